//! Confining client-named paths to the media roots.
//!
//! A path is rejected if it has a `..` component at all, then canonicalised
//! (which resolves every symlink) and must lie inside a canonical media
//! root: a symlink inside a root that points outside it is refused.

use std::path::{Component, Path, PathBuf};

use crate::error::ApiError;

/// The canonical path of `requested` if it is inside one of `roots`
/// (canonical). Relative paths are taken relative to the first root.
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
        roots
            .first()
            .ok_or_else(|| ApiError::Forbidden("no media roots configured".into()))?
            .join(p)
    };
    // Whether it does not exist or is outside the roots, the client learns
    // only that it may not use it.
    let outside = || ApiError::Forbidden(format!("video: {requested} is not inside a media root"));
    let canon = std::fs::canonicalize(&joined).map_err(|_| {
        if roots.iter().any(|r| joined.starts_with(r)) {
            ApiError::NotFound(format!("video: {requested} not found"))
        } else {
            outside()
        }
    })?;
    if !roots.iter().any(|r| canon.starts_with(r)) {
        return Err(outside());
    }
    Ok(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_components_symlinks_and_outside_paths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.mp4"), b"x").unwrap();
        std::fs::write(d.path().join("secret.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.mp4"), root.join("link.mp4")).unwrap();
        let roots = vec![std::fs::canonicalize(&root).unwrap()];
        assert!(confine("a.mp4", &roots).is_ok());
        assert!(confine(root.join("a.mp4").to_str().unwrap(), &roots).is_ok());
        for bad in [
            "../secret.mp4",
            "sub/../../secret.mp4",
            "link.mp4",
            d.path().join("secret.mp4").to_str().unwrap(),
            "/etc/passwd",
        ] {
            let e = confine(bad, &roots).unwrap_err();
            assert!(matches!(e, ApiError::Forbidden(_)), "{bad}: {e:?}");
        }
        assert!(matches!(
            confine("missing.mp4", &roots),
            Err(ApiError::NotFound(_))
        ));
    }
}
