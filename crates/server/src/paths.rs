//! Confining client-named paths to the media roots.
//!
//! A path is rejected if it has a `..` component at all or if, as written,
//! it is not inside a root (decided from the text alone). Otherwise it is
//! canonicalised (which resolves every symlink) and must still lie inside a
//! canonical media root. A path that does not exist and one that a symlink
//! leads out of the roots get the same answer, so the answers reveal
//! nothing about files outside the roots.

use std::path::{Component, Path, PathBuf};

use crate::error::ApiError;

/// The canonical path of `requested` if it is inside one of `roots`
/// (canonical). A relative path is taken relative to the first root where
/// it exists (the first root when none has it).
pub fn confine(requested: &str, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    let p = Path::new(requested);
    if requested.is_empty() || requested.contains('\0') {
        return Err(ApiError::BadRequest("video: empty or invalid path".into()));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ApiError::Forbidden(
            "video: '..' is not allowed in paths".into(),
        ));
    }
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let first = roots
            .first()
            .ok_or_else(|| ApiError::Forbidden("no media roots configured".into()))?;
        roots
            .iter()
            .map(|r| r.join(p))
            .find(|j| {
                std::fs::canonicalize(j).is_ok_and(|c| roots.iter().any(|r| c.starts_with(r)))
            })
            .unwrap_or_else(|| first.join(p))
    };
    if !roots.iter().any(|r| joined.starts_with(r)) {
        return Err(ApiError::Forbidden(format!(
            "video: {requested} is not inside a media root"
        )));
    }
    // Missing, or leading out of the roots through a symlink: one answer.
    let not_found = || ApiError::NotFound(format!("video: {requested} not found"));
    let canon = std::fs::canonicalize(&joined).map_err(|_| not_found())?;
    if !roots.iter().any(|r| canon.starts_with(r)) {
        return Err(not_found());
    }
    Ok(canon)
}

/// Name of an accepted upload in the upload folder: `upload-` and the first
/// 32 hex digits of the content's BLAKE3 hash.
pub fn stored_upload_name(hex: &str) -> String {
    format!("upload-{}", &hex[..32.min(hex.len())])
}

/// Whether `name` is an accepted upload's name (see [`stored_upload_name`]).
pub fn is_stored_upload_name(name: &str) -> bool {
    name.strip_prefix("upload-").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// [`confine`] for a job's video: inside the upload folder only accepted
/// uploads may be named, never the uploads' working files (temporary files
/// being written, leftovers of a crash, anything else placed there); they
/// are answered as not found.
pub fn confine_video(
    requested: &str,
    roots: &[PathBuf],
    upload_dir: &Path,
) -> Result<PathBuf, ApiError> {
    let canon = confine(requested, roots)?;
    if canon.starts_with(upload_dir) {
        let accepted = canon.parent() == Some(upload_dir)
            && canon
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_stored_upload_name);
        if !accepted {
            return Err(ApiError::NotFound(format!("video: {requested} not found")));
        }
    }
    Ok(canon)
}

/// Folders whose contents are shown by relative path, most specific
/// first: the upload folder, then the media roots.
pub fn display_roots(config: &crate::Config) -> Vec<PathBuf> {
    let mut r = vec![config.upload_dir.clone()];
    r.extend(config.media_roots.iter().cloned());
    r
}

/// `path` relative to the first of `roots` holding it, comparing the
/// path and each root as given and resolved (either may pass through a
/// symbolic link or `..`); `None` when no root holds it.
pub fn relative_to_roots(path: &Path, roots: &[PathBuf]) -> Option<String> {
    let inside = |p: &Path, root: &Path| {
        p.strip_prefix(root)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
            .map(|rel| rel.to_string_lossy().into_owned())
    };
    if let Some(rel) = roots.iter().find_map(|r| inside(path, r)) {
        return Some(rel);
    }
    let resolved = std::fs::canonicalize(path).ok();
    roots.iter().find_map(|r| {
        let root = std::fs::canonicalize(r).ok();
        [Some(path), resolved.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|p| {
                [Some(r.as_path()), root.as_deref()]
                    .into_iter()
                    .flatten()
                    .find_map(|r| inside(p, r))
            })
    })
}

/// `path` as someone who is not an administrator sees it: relative to the
/// first of `roots` holding it, else its file name.
pub fn relative_shown(path: &str, roots: &[PathBuf]) -> String {
    let p = Path::new(path);
    relative_to_roots(p, roots).unwrap_or_else(|| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// `path` as `admin` (or not) may see it.
pub fn shown_path(path: &str, roots: &[PathBuf], admin: bool) -> String {
    if admin {
        path.to_owned()
    } else {
        relative_shown(path, roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_relative_through_a_symbolic_link_to_the_root() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("data");
        std::fs::create_dir_all(real.join("mot/seq/gt")).unwrap();
        std::fs::write(real.join("mot/seq/gt/gt.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let file = real.join("mot/seq/gt/gt.txt");
        let via_link = d.path().join("link/mot/seq/gt/gt.txt");
        for (path, root) in [(&file, d.path().join("link")), (&via_link, real.clone())] {
            assert_eq!(
                relative_to_roots(path, std::slice::from_ref(&root)).as_deref(),
                Some("mot/seq/gt/gt.txt"),
                "{path:?} under {root:?}"
            );
        }
        let outside = d.path().join("elsewhere.txt");
        assert_eq!(
            relative_to_roots(&outside, std::slice::from_ref(&real)),
            None
        );
        assert_eq!(
            relative_shown(outside.to_str().unwrap(), &[real]),
            "elsewhere.txt"
        );
    }

    #[test]
    fn parent_components_symlinks_and_outside_paths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.mp4"), b"x").unwrap();
        std::fs::write(d.path().join("secret.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.mp4"), root.join("link.mp4")).unwrap();
        std::os::unix::fs::symlink(d.path(), root.join("out")).unwrap();
        let roots = vec![std::fs::canonicalize(&root).unwrap()];
        assert!(confine("a.mp4", &roots).is_ok());
        assert!(confine(root.join("a.mp4").to_str().unwrap(), &roots).is_ok());
        for bad in [
            "../secret.mp4",
            "sub/../../secret.mp4",
            d.path().join("secret.mp4").to_str().unwrap(),
            "/etc/passwd",
            "/etc/no-such-file",
        ] {
            let e = confine(bad, &roots).unwrap_err();
            assert!(matches!(e, ApiError::Forbidden(_)), "{bad}: {e:?}");
        }
        // Through a symlink, an outside file that exists and one that does
        // not get the same answer as a missing file inside the root.
        for hidden in [
            "link.mp4",
            "out/secret.mp4",
            "out/missing.mp4",
            "missing.mp4",
        ] {
            let e = confine(hidden, &roots).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("video: {hidden} not found"),
                "{hidden}: {e:?}"
            );
            assert!(matches!(e, ApiError::NotFound(_)), "{hidden}: {e:?}");
        }
    }

    #[test]
    fn relative_paths_are_found_in_any_root() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("sub")).unwrap();
        std::fs::write(a.join("x.mp4"), b"x").unwrap();
        std::fs::write(b.join("x.mp4"), b"x").unwrap();
        std::fs::write(b.join("sub/y.mp4"), b"y").unwrap();
        let roots: Vec<PathBuf> = [a, b]
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap())
            .collect();
        assert_eq!(confine("x.mp4", &roots).unwrap(), roots[0].join("x.mp4"));
        assert_eq!(
            confine("sub/y.mp4", &roots).unwrap(),
            roots[1].join("sub/y.mp4")
        );
        let e = confine("none.mp4", &roots).unwrap_err();
        assert_eq!(e.to_string(), "video: none.mp4 not found");
    }

    #[test]
    fn only_accepted_uploads_are_addressable_in_the_upload_folder() {
        let d = tempfile::tempdir().unwrap();
        let up = std::fs::canonicalize(d.path()).unwrap();
        let stored = stored_upload_name(&"ab12".repeat(16));
        for name in [stored.as_str(), "upload-1-2-3.bin", "notes.mp4"] {
            std::fs::write(up.join(name), b"x").unwrap();
        }
        let roots = vec![up.clone()];
        assert!(confine_video(&stored, &roots, &up).is_ok());
        for bad in ["upload-1-2-3.bin", "notes.mp4"] {
            let e = confine_video(bad, &roots, &up).unwrap_err();
            assert!(matches!(e, ApiError::NotFound(_)), "{bad}: {e:?}");
        }
        assert!(!is_stored_upload_name("upload-ABCDEF"));
        let roots = vec![PathBuf::from("/srv/up"), PathBuf::from("/srv/media")];
        assert_eq!(relative_shown("/srv/up/upload-1", &roots), "upload-1");
        assert_eq!(relative_shown("/srv/media/a/b.mp4", &roots), "a/b.mp4");
        assert_eq!(relative_shown("/home/me/c.mp4", &roots), "c.mp4");
        assert_eq!(relative_shown("/srv/mediax/c.mp4", &roots), "c.mp4");
        assert_eq!(shown_path("/home/me/c.mp4", &roots, true), "/home/me/c.mp4");
        assert!(!is_stored_upload_name(&format!("{stored}.bin")));
    }
}
