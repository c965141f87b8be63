//! Ed25519 keys: PKCS#8 private keys and SubjectPublicKeyInfo public keys, both PEM, as OpenSSL
//! writes them (`openssl genpkey -algorithm ed25519` keys work too), and a keyring of several
//! trusted public keys so that signing keys can be rotated.
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::BundleError;

const PRIVATE_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows.
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410, as OpenSSL writes it); the 32-byte
/// seed follows. ring writes v2 (with the public key appended), which OpenSSL 3.0 cannot read.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same prefix in ring's v2 documents (length and version differ).
const PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Names a public key: the first 8 bytes of SHA-256 over the raw key, in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn of(raw: &[u8; 32]) -> Self {
        let digest = crate::hash_chunk(raw);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut id = [0u8; 8];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// Makes a new key and returns it with its PKCS#8 PEM encoding.
    pub fn generate() -> Result<(Self, String), BundleError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| BundleError::BadInput("the system random generator failed".into()))?;
        let seed = document
            .as_ref()
            .strip_prefix(&PKCS8_V2_PREFIX[..])
            .map(|rest| &rest[..32])
            .expect("ring writes Ed25519 PKCS#8 v2 documents");
        let mut v1 = PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        let key = Self::from_pkcs8(&v1, Path::new("<generated>"))?;
        Ok((key, pem_encode(PRIVATE_LABEL, &v1)))
    }

    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let text = read_key_file(path)?;
        let der = pem_decode(&text, PRIVATE_LABEL, path)?;
        Self::from_pkcs8(&der, path)
    }

    fn from_pkcs8(der: &[u8], path: &Path) -> Result<Self, BundleError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| BundleError::BadKey {
                path: path.display().to_string(),
                reason: format!("not an Ed25519 PKCS#8 private key ({e})"),
            })?;
        Ok(SigningKey { pair })
    }

    pub fn public_key(&self) -> PublicKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey::from_raw(raw)
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    id: KeyId,
}

impl PublicKey {
    /// A key made here from a private key: strong by construction.
    fn from_raw(raw: [u8; 32]) -> Self {
        PublicKey {
            raw,
            id: KeyId::of(&raw),
        }
    }

    /// A key from outside. Refused unless it is the canonical encoding of a point of the prime
    /// order subgroup: a small-order key (such as the identity `01 00 … 00`) verifies a
    /// signature with R = identity and S = 0 for every message, and no real key has a
    /// small-order component or a non-canonical encoding.
    pub fn from_bytes(raw: [u8; 32]) -> Result<Self, String> {
        let point = CompressedEdwardsY(raw)
            .decompress()
            .ok_or("not a point on the Ed25519 curve")?;
        if point.compress().to_bytes() != raw {
            return Err("not the canonical encoding of its point".into());
        }
        if point.is_small_order() {
            return Err("a weak key of small order, which would accept forged signatures".into());
        }
        if !point.is_torsion_free() {
            return Err(
                "a key with a small-order component (not made by Ed25519 key generation)".into(),
            );
        }
        Ok(Self::from_raw(raw))
    }

    pub fn load(path: &Path) -> Result<Self, BundleError> {
        Self::from_pem(&read_key_file(path)?, path)
    }

    /// A SubjectPublicKeyInfo PEM text; `origin` names it in errors.
    pub fn from_pem(text: &str, origin: &Path) -> Result<Self, BundleError> {
        let path = origin;
        let der = pem_decode(text, PUBLIC_LABEL, path)?;
        let raw = der
            .strip_prefix(&SPKI_ED25519_PREFIX[..])
            .and_then(|rest| <[u8; 32]>::try_from(rest).ok())
            .ok_or_else(|| BundleError::BadKey {
                path: path.display().to_string(),
                reason: "not an Ed25519 public key".into(),
            })?;
        Self::from_bytes(raw).map_err(|reason| BundleError::BadKey {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem_encode(PUBLIC_LABEL, &der)
    }

    /// RFC 8032 §5.1.7 without the cofactor: ring refuses S ≥ L and compares the encoding of R
    /// exactly; keys are strong by construction (`from_bytes`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

/// The public keys a device trusts.
pub struct Keyring {
    keys: Vec<PublicKey>,
    source: PathBuf,
}

impl Keyring {
    /// Loads one `.pub` file, or every `*.pub` file in a folder. An empty keyring is an error:
    /// a device that trusts nothing must say so loudly instead of accepting anything.
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let meta =
            fs::metadata(path).map_err(BundleError::io(format!("keyring {}", path.display())))?;
        let mut keys = Vec::new();
        if meta.is_dir() {
            let entries = fs::read_dir(path)
                .map_err(BundleError::io(format!("keyring {}", path.display())))?;
            let mut files = Vec::new();
            for entry in entries {
                let entry =
                    entry.map_err(BundleError::io(format!("keyring {}", path.display())))?;
                let file = entry.path();
                if file.extension().is_some_and(|ext| ext == "pub") {
                    files.push(file);
                }
            }
            files.sort();
            for file in files {
                keys.push(PublicKey::load(&file)?);
            }
        } else {
            keys.push(PublicKey::load(path)?);
        }
        Self::from_keys(keys, path)
    }

    pub fn from_keys(keys: Vec<PublicKey>, source: &Path) -> Result<Self, BundleError> {
        if keys.is_empty() {
            return Err(BundleError::EmptyKeyring(source.display().to_string()));
        }
        Ok(Keyring {
            keys,
            source: source.to_path_buf(),
        })
    }

    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }
}

fn read_key_file(path: &Path) -> Result<String, BundleError> {
    let bytes = fs::read(path).map_err(BundleError::io(format!("key file {}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| BundleError::BadKey {
        path: path.display().to_string(),
        reason: "not a PEM text file".into(),
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(text: &str, label: &str, path: &Path) -> Result<Vec<u8>, BundleError> {
    let bad = |reason: String| BundleError::BadKey {
        path: path.display().to_string(),
        reason,
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| bad(format!("no '{begin}' block")))?;
    let body_start = start + begin.len();
    let body_len = text[body_start..]
        .find(&end)
        .ok_or_else(|| bad(format!("no '{end}' line")))?;
    let body: String = text[body_start..body_start + body_len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| bad(format!("bad base64 ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = SigningKey::generate().unwrap();
        fs::write(dir.path().join("k.key"), pem).unwrap();
        fs::write(dir.path().join("k.pub"), key.public_key().to_pem()).unwrap();
        let loaded = SigningKey::load(&dir.path().join("k.key")).unwrap();
        let public = PublicKey::load(&dir.path().join("k.pub")).unwrap();
        assert_eq!(public, key.public_key());
        let sig = loaded.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellp", &sig));
    }

    #[test]
    fn keyring_folder_takes_only_pub_files_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let err = Keyring::load(dir.path()).err().unwrap();
        assert!(err.to_string().starts_with("no trusted public key in"));
        for name in ["a.pub", "b.pub"] {
            let (key, _) = SigningKey::generate().unwrap();
            fs::write(dir.path().join(name), key.public_key().to_pem()).unwrap();
        }
        fs::write(dir.path().join("README"), "not a key").unwrap();
        assert_eq!(Keyring::load(dir.path()).unwrap().ids().count(), 2);
    }

    #[test]
    fn malformed_key_files_name_the_file_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pub");
        fs::write(&path, "garbage").unwrap();
        let err = PublicKey::load(&path).err().unwrap().to_string();
        assert!(
            err.contains("x.pub") && err.contains("no '-----BEGIN PUBLIC KEY-----'"),
            "{err}"
        );
        let (key, _) = SigningKey::generate().unwrap();
        fs::write(&path, key.public_key().to_pem().replace('A', "*")).unwrap();
        let err = PublicKey::load(&path).err().unwrap().to_string();
        assert!(err.contains("x.pub"), "{err}");
    }

    /// The SPKI PEM of a raw key, as an attacker would hand it over.
    fn pem_of(raw: [u8; 32]) -> String {
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        pem_encode(PUBLIC_LABEL, &der)
    }

    #[test]
    fn defect_07_a_weak_key_forges_a_signature_so_keyrings_refuse_it() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // R = identity, S = 0: what verification without the key check would accept.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(
            PublicKey::from_raw(identity).verify(b"installed 6.6.6", &forged),
            "the forgery this test guards against no longer works; keep the key check anyway"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weak.pub");
        fs::write(&path, pem_of(identity)).unwrap();
        let err = Keyring::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("weak.pub") && err.contains("small order"),
            "{err}"
        );
        assert!(PublicKey::load(&path).is_err());
    }

    #[test]
    fn every_small_order_and_non_canonical_key_is_refused() {
        // The 8 points of small order (canonical encodings), and encodings with y >= p.
        let mut small_order = vec![[0u8; 32]; 0];
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        let mut zero = [0u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        small_order.push(one);
        small_order.push(p_minus_1);
        small_order.push(zero);
        zero[31] = 0x80;
        small_order.push(zero);
        small_order.push(hex_key(
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        ));
        small_order.push(hex_key(
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        ));
        small_order.push(hex_key(
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        ));
        small_order.push(hex_key(
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        ));
        for raw in small_order {
            assert!(
                PublicKey::from_bytes(raw).is_err(),
                "{} passed",
                hex::encode(raw)
            );
        }
        // y = p + 1 encodes the identity again, non-canonically.
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        assert!(PublicKey::from_bytes(p_plus_1).is_err());
        let (key, _) = SigningKey::generate().unwrap();
        assert!(PublicKey::from_bytes(key.public_key().raw).is_ok());
    }

    fn hex_key(text: &str) -> [u8; 32] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn a_signature_with_s_not_reduced_is_refused() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut sig = key.sign(b"m");
        assert!(key.public_key().verify(b"m", &sig));
        // S + L is the same scalar, not the canonical encoding (RFC 8032 §5.1.7 requires S < L).
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
            sig[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!key.public_key().verify(b"m", &sig));
    }
}
