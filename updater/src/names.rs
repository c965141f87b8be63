//! Enums whose variants each have one written name (in state.json, the local API, progress
//! lines), declared once: `Display`, `FromStr` and serde all use the same table.

/// Declares an enum and the one name of each variant:
/// `named! { pub enum Phase { Idle = "idle", ReadyToReboot = "ready-to-reboot" } }`.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> ::std::result::Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| {
                        let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("'{text}' is not one of {}", known.join(", "))
                    })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

pub(crate) use named;

#[cfg(test)]
mod tests {
    named! {
        /// For the test.
        enum Colour { Red = "red", DarkBlue = "dark-blue" }
    }

    #[test]
    fn one_name_serves_display_parse_and_serde() {
        assert_eq!(Colour::DarkBlue.to_string(), "dark-blue");
        assert_eq!("red".parse::<Colour>(), Ok(Colour::Red));
        assert_eq!(
            "blue".parse::<Colour>(),
            Err("'blue' is not one of red, dark-blue".to_string())
        );
        assert_eq!(
            serde_json::to_string(&Colour::DarkBlue).unwrap(),
            "\"dark-blue\""
        );
        let back: Colour = serde_json::from_str("\"dark-blue\"").unwrap();
        assert_eq!(back, Colour::DarkBlue);
        assert!(serde_json::from_str::<Colour>("\"green\"").is_err());
    }
}
