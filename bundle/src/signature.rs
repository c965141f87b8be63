//! The signature entry: one line per signature, `ed25519 <key id> <base64 signature>`, each over
//! the exact bytes of the manifest entry. Several lines let a bundle carry the old and the new key's
//! signatures while a fleet's keyrings are rotated.
use base64::Engine;

use crate::{BundleError, KeyId, Keyring, SigningKey};

const HEADER: &str = "# update bundle signature v1\n";
const ALGORITHM: &str = "ed25519";

pub(crate) fn sign(manifest: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let mut out = String::from(HEADER);
    for key in keys {
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(manifest));
        out.push_str(&format!("{ALGORITHM} {} {sig}\n", key.public_key().id()));
    }
    out.into_bytes()
}

/// Returns the id of the first trusted key whose signature matches `message` (the manifest, or a
/// release index, as `what` names it in errors).
pub(crate) fn verify(
    message: &[u8],
    signature_entry: &[u8],
    keyring: &Keyring,
    what: &str,
) -> Result<KeyId, BundleError> {
    let text = std::str::from_utf8(signature_entry)
        .map_err(|_| BundleError::Corrupt("signature entry is not text".into()))?;
    let mut untrusted = Vec::new();
    let mut mismatched = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [algorithm, id, sig] = fields[..] else {
            return Err(BundleError::Corrupt(format!(
                "malformed signature line '{line}'"
            )));
        };
        if algorithm != ALGORITHM {
            continue;
        }
        let id = KeyId::parse(id)
            .ok_or_else(|| BundleError::Corrupt(format!("malformed key id '{id}'")))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| BundleError::Corrupt(format!("signature by key {id} is not base64")))?;
        match keyring.get(id) {
            Some(key) if key.verify(message, &sig) => return Ok(id),
            Some(_) => mismatched.push(id),
            None => untrusted.push(id),
        }
    }
    let detail = if !mismatched.is_empty() {
        format!(
            " (the {what} was modified after it was signed by key {})",
            join(&mismatched)
        )
    } else if !untrusted.is_empty() {
        format!(
            " (signed by untrusted key {}; trusted: {})",
            join(&untrusted),
            join(&keyring.ids().collect::<Vec<_>>())
        )
    } else {
        format!(" (the {what} carries no Ed25519 signature)")
    };
    Err(BundleError::SignatureInvalid {
        what: what.to_string(),
        detail,
    })
}

fn join(ids: &[KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ring_of(keys: &[&SigningKey]) -> Keyring {
        Keyring::from_keys(
            keys.iter().map(|k| k.public_key()).collect(),
            Path::new("t"),
        )
        .unwrap()
    }

    #[test]
    fn verifies_with_any_trusted_key_and_names_the_failure() {
        let (old, _) = SigningKey::generate().unwrap();
        let (new, _) = SigningKey::generate().unwrap();
        let (stranger, _) = SigningKey::generate().unwrap();
        let entry = sign(b"manifest", &[&old, &new]);
        assert_eq!(
            verify(b"manifest", &entry, &ring_of(&[&new]), "manifest").unwrap(),
            new.public_key().id()
        );

        let err = verify(b"manifest", &entry, &ring_of(&[&stranger]), "manifest").unwrap_err();
        assert!(err.to_string().contains("signed by untrusted key"), "{err}");
        let err = verify(b"manifesT", &entry, &ring_of(&[&old]), "manifest").unwrap_err();
        assert!(
            err.to_string().contains("modified after it was signed"),
            "{err}"
        );
        let err = verify(
            b"manifest",
            HEADER.as_bytes(),
            &ring_of(&[&old]),
            "manifest",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no Ed25519 signature"), "{err}");
        let err = verify(b"manifest", b"ed25519 zz", &ring_of(&[&old]), "manifest").unwrap_err();
        assert!(
            err.to_string().contains("malformed signature line"),
            "{err}"
        );
    }
}
