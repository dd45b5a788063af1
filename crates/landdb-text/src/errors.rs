//! The errors of this crate: text that an encoding cannot hold, and encoding names it does not know.

use crate::Encoding;

/// A character of the text has no byte representation in the target encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{character:?} (U+{code:04X}) cannot be written in {encoding}", code = u32::from(*.character))]
pub struct EncodeError {
    /// The first character (after NFC composition) that the encoding cannot hold.
    pub character: char,
    /// The encoding that was asked for.
    pub encoding: Encoding,
}

/// An encoding name (for example the contents of a `.cpg` file) that is not one of the supported encodings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown text encoding {0:?}: expected UTF-8, TCVN3 (ABC, TCVN5712-1), VNI (VNI-Windows) or CP1258 (windows-1258)"
)]
pub struct UnknownEncoding(pub String);
