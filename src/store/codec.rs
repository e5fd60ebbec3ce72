//! How values are written to and read from columns.
//!
//! sqlx has no `jiff` support, and a later PostgreSQL backend must read the same
//! data, so everything is kept to the plainest column types:
//!
//! - times are INTEGER unix milliseconds, exposed as [`jiff::Timestamp`]; a
//!   timestamp therefore loses anything below the millisecond when stored;
//! - enumerations are lower-case TEXT (guarded by CHECK constraints in the
//!   schema) and serialize to the same strings through serde;
//! - JSON documents are TEXT.
//!
//! A value that cannot be decoded is reported as [`StoreError::Corrupt`].

use jiff::Timestamp;

use super::StoreError;

/// The current time, truncated to what the store keeps.
pub(crate) fn now() -> (i64, Timestamp) {
    let ms = Timestamp::now().as_millisecond();
    // Truncating a valid timestamp to milliseconds keeps it in range.
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    (ms, ts)
}

/// A timestamp as stored.
pub(crate) fn millis(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

/// A stored time, read back.
pub(crate) fn timestamp(ms: i64, column: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Corrupt(format!("{column} holds {ms}, not a time: {e}")))
}

/// A stored JSON document, read back.
pub(crate) fn json(text: &str, column: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{column} holds invalid JSON: {e}")))
}

/// Declares an enumeration stored as lower-case TEXT.
///
/// Generates `as_str`, `Display`, serde (de)serialization as the same strings,
/// and a crate-private decoder that reports unknown text as corruption.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $column:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lower-case text this value is stored and serialized as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Decodes the stored text.
            pub(crate) fn decode(text: &str) -> Result<Self, $crate::store::StoreError> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    other => Err($crate::store::StoreError::Corrupt(format!(
                        "{} holds unknown value {other:?}",
                        $column
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;
