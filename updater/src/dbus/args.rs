//! The `a{sv}` arguments of `InstallBundle`, as RAUC defines them: honoured where they mean
//! something here, refused with the reason where they do not, so that a client never believes an
//! option took effect when it did not.
use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use crate::install::InstallOptions;

pub fn install_options(args: &HashMap<String, OwnedValue>) -> Result<InstallOptions, String> {
    let mut options = InstallOptions::default();
    for (key, value) in args {
        let value: &Value = value;
        match (key.as_str(), value) {
            // rauc's client always sends it; only `true` asks for something this updater refuses.
            ("ignore-compatible", Value::Bool(false)) => {}
            ("ignore-compatible", Value::Bool(true)) => return Err(
                "ignore-compatible: this updater never installs a bundle made for another device"
                    .into(),
            ),
            ("require-manifest-hash", Value::Str(hash)) => {
                options.expect_manifest = Some(manifest_hash(hash)?);
            }
            // A label for the install in RAUC's event log; ours records the version instead.
            ("transaction-id", Value::Str(_)) => {}
            ("tls-no-verify", Value::Bool(false)) => {}
            ("tls-no-verify", Value::Bool(true)) => {
                return Err(
                    "tls-no-verify: this updater always verifies the server's certificate".into(),
                )
            }
            ("tls-ca", Value::Str(_)) => {
                return Err("tls-ca: set [http] ca_file in the updater's config instead".into())
            }
            ("tls-cert" | "tls-key", Value::Str(_)) => {
                return Err(format!("{key}: client certificates are not supported"))
            }
            ("http-headers", Value::Array(headers)) if headers.is_empty() => {}
            ("http-headers", Value::Array(_)) => {
                return Err("http-headers: extra request headers are not supported".into())
            }
            (
                "ignore-compatible"
                | "require-manifest-hash"
                | "transaction-id"
                | "tls-no-verify"
                | "tls-ca"
                | "tls-cert"
                | "tls-key"
                | "http-headers",
                _,
            ) => return Err(format!("{key}: wrong type {}", value.value_signature())),
            _ => return Err(format!("unknown argument '{key}'")),
        }
    }
    Ok(options)
}

/// The SHA-256 of the signed manifest, in hex (RAUC's is the manifest's hash too).
fn manifest_hash(text: &str) -> Result<[u8; 32], String> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash)
        .map_err(|_| format!("require-manifest-hash: '{text}' is not 64 hex digits"))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{Array, Str};

    fn args(pairs: Vec<(&str, Value<'static>)>) -> HashMap<String, OwnedValue> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn what_rauc_1_8_sends_by_default_is_accepted() {
        let options = install_options(&args(vec![("ignore-compatible", Value::Bool(false))]));
        assert_eq!(options.unwrap().expect_manifest, None);
    }

    #[test]
    fn a_manifest_hash_becomes_the_expected_manifest() {
        let hex = "ab".repeat(32);
        let options = install_options(&args(vec![(
            "require-manifest-hash",
            Value::Str(Str::from(hex)),
        )]))
        .unwrap();
        assert_eq!(options.expect_manifest, Some([0xab; 32]));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        let cases: Vec<(&str, Value<'static>, &str)> = vec![
            (
                "ignore-compatible",
                Value::Bool(true),
                "never installs a bundle made for another device",
            ),
            ("tls-no-verify", Value::Bool(true), "always verifies"),
            (
                "tls-cert",
                Value::Str(Str::from("/c.pem")),
                "client certificates",
            ),
            ("tls-ca", Value::Str(Str::from("/ca.pem")), "[http] ca_file"),
            (
                "require-manifest-hash",
                Value::Str(Str::from("xyz")),
                "not 64 hex digits",
            ),
            (
                "ignore-compatible",
                Value::Str(Str::from("yes")),
                "wrong type s",
            ),
            ("force", Value::Bool(true), "unknown argument 'force'"),
            (
                "http-headers",
                Value::Array(Array::from(vec!["X-A: b".to_string()])),
                "headers are not supported",
            ),
        ];
        for (key, value, says) in cases {
            let err = install_options(&args(vec![(key, value)])).unwrap_err();
            assert!(err.contains(says), "{key}: {err}");
        }
    }
}
