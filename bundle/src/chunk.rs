use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::BundleError;

/// A SHA-256 digest of one chunk (or of a whole image).
pub type ChunkDigest = [u8; 32];

pub fn hash_chunk(data: &[u8]) -> ChunkDigest {
    Sha256::digest(data).into()
}

/// SHA-256 over a whole image fed in pieces.
#[derive(Default)]
pub struct ImageHasher(Sha256);

impl ImageHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> ChunkDigest {
        self.0.finalize().into()
    }
}

/// Chunk data as it came out of the bundle, together with the digest the signed manifest
/// promises for it. The only way to get at the data for writing is [`UnverifiedChunk::verify`].
pub struct UnverifiedChunk {
    data: Vec<u8>,
    component: Arc<str>,
    index: u64,
    offset: u64,
    expected: ChunkDigest,
}

/// Chunk data whose SHA-256 matched the signed manifest.
pub struct VerifiedChunk {
    data: Vec<u8>,
    component: Arc<str>,
    index: u64,
    offset: u64,
    digest: ChunkDigest,
}

impl UnverifiedChunk {
    pub(crate) fn new(
        data: Vec<u8>,
        component: Arc<str>,
        index: u64,
        offset: u64,
        expected: ChunkDigest,
    ) -> Self {
        UnverifiedChunk {
            data,
            component,
            index,
            offset,
            expected,
        }
    }

    /// Chunk `index` of component number `component`, from wherever it came (a device's own
    /// blocks, a single fetched frame), to be checked against what `manifest` promises for it.
    pub fn of(manifest: &crate::Manifest, component: usize, index: u64, data: Vec<u8>) -> Self {
        let c = &manifest.components[component];
        UnverifiedChunk {
            data,
            component: Arc::from(c.name.as_str()),
            index,
            offset: index * u64::from(manifest.chunk_size),
            expected: c.chunks[index as usize],
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Hashes the data and compares it with the signed digest. On a mismatch the buffer is handed
    /// back so that the caller can reuse it.
    pub fn verify(self) -> Result<VerifiedChunk, (BundleError, Vec<u8>)> {
        if hash_chunk(&self.data) == self.expected {
            Ok(VerifiedChunk {
                data: self.data,
                component: self.component,
                index: self.index,
                offset: self.offset,
                digest: self.expected,
            })
        } else {
            let err = BundleError::ChunkMismatch {
                component: self.component.to_string(),
                chunk: self.index,
            };
            Err((err, self.data))
        }
    }
}

impl VerifiedChunk {
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Byte offset of this chunk within its component image.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The signed digest the data matched: what a read-back of the written chunk must match too.
    pub fn digest(&self) -> ChunkDigest {
        self.digest
    }

    /// Gives the buffer back for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_matching_and_rejects_flipped_data() {
        let data = vec![7u8; 1000];
        let digest = hash_chunk(&data);
        let ok = UnverifiedChunk::new(data.clone(), "rootfs".into(), 3, 3000, digest);
        let Ok(verified) = ok.verify() else {
            panic!("matching chunk must verify")
        };
        assert_eq!(verified.offset(), 3000);
        assert_eq!(verified.data(), &data[..]);

        let mut bad = data;
        bad[999] ^= 1;
        let (err, buf) = UnverifiedChunk::new(bad, "rootfs".into(), 3, 3000, digest)
            .verify()
            .err()
            .expect("flipped chunk is refused");
        assert_eq!(buf.len(), 1000);
        assert_eq!(
            err.to_string(),
            "bundle is corrupt: chunk 3 of component 'rootfs' does not match its signed SHA-256"
        );
    }
}
