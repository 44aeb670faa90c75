//! Content fingerprints for the result cache.
//!
//! A key design decision: the cache key of a video is a BLAKE3 hash of its
//! size and of 16 chunks of 64 KiB spread evenly through the file (the whole
//! file when it is under 1 MiB). That reads at most 1 MiB, so a cache lookup
//! never costs a second full read of a video the decoder is about to read
//! anyway, while two different encodes practically never share every sampled
//! chunk and the size. Edits that keep the size and touch none of the
//! sampled chunks would go unnoticed; `--no-cache` is the escape hatch.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::MediaError;

const CHUNK: u64 = 64 * 1024;
const CHUNKS: u64 = 16;

/// A file's cache identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hex BLAKE3 over the size and the sampled chunks.
    pub hash: String,
    pub size: u64,
}

/// Fingerprints a file (see the module docs for what is read).
pub fn file_fingerprint(path: &Path) -> Result<Fingerprint, MediaError> {
    let io = |e| MediaError::io(path, e);
    let mut f = File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"peregrine-fingerprint-v1");
    hasher.update(&size.to_le_bytes());
    if size <= CHUNK * CHUNKS {
        let mut buf = Vec::with_capacity(size as usize);
        f.read_to_end(&mut buf).map_err(io)?;
        hasher.update(&buf);
    } else {
        let mut buf = vec![0u8; CHUNK as usize];
        let step = (size - CHUNK) / (CHUNKS - 1);
        for i in 0..CHUNKS {
            f.seek(SeekFrom::Start(i * step)).map_err(io)?;
            f.read_exact(&mut buf).map_err(io)?;
            hasher.update(&buf);
        }
    }
    Ok(Fingerprint {
        hash: hasher.finalize().to_hex().to_string(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_sampled_content_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let a = file_fingerprint(&p).unwrap();
        assert_eq!(a, file_fingerprint(&p).unwrap());
        let mut changed = data.clone();
        changed[0] ^= 1; // first chunk is always sampled
        std::fs::write(&p, &changed).unwrap();
        assert_ne!(a.hash, file_fingerprint(&p).unwrap().hash);
        std::fs::write(&p, &data[..data.len() - 1]).unwrap();
        assert_ne!(a.hash, file_fingerprint(&p).unwrap().hash);
    }
}
