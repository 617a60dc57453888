//! Where the protocol keeps things in the store: key names under one namespace, and how
//! integers written by `increment` are encoded.

use super::*;

pub(super) const NAMESPACE: &str = "apikeys/v1";

/// The store keys of one user.
pub(super) struct UserSpace {
    pub(super) head: String,
    pub(super) seq: String,
    pub(super) index_prefix: String,
}

impl UserSpace {
    pub(super) fn of(user_id: &str) -> UserSpace {
        // Hashing bounds the length (user ids may be 256 multi-byte characters; store keys 255
        // bytes) and keeps arbitrary characters out of store keys.
        let base = format!("{NAMESPACE}/user/{}", sha256_hex(user_id));
        UserSpace {
            head: format!("{base}/head"),
            seq: format!("{base}/seq"),
            index_prefix: format!("{base}/index/"),
        }
    }

    /// Counter `shard` of the ones handing out version numbers (see `chain::next_version`):
    /// shard 0 is `seq` itself, the others exist only for users whose writes once raced.
    pub(super) fn seq_shard(&self, shard: u64) -> String {
        match shard {
            0 => self.seq.clone(),
            shard => format!("{}/{shard}", self.seq),
        }
    }

    pub(super) fn index(&self, version: u64) -> String {
        format!("{}{version}", self.index_prefix)
    }
}

/// Store key of the record of the key with SHA-256 `hash`.
pub fn record_key(hash: &str) -> String {
    format!("{NAMESPACE}/key/{hash}")
}

/// How the store encodes the integers `increment` writes: Spin's SQLite store uses 8 bytes
/// little-endian, Redis and DynamoDB decimal text. `head` is rewritten in the encoding it was
/// found in, so a later `increment(head, 0)` never meets a value it cannot add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntEncoding {
    LittleEndian,
    Decimal,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub(super) version: u64,
    pub(super) encoding: IntEncoding,
}

impl Head {
    pub(super) fn decode(bytes: &[u8]) -> Result<Head, StoreError> {
        let is_decimal =
            !bytes.is_empty() && bytes.len() <= 20 && bytes.iter().all(u8::is_ascii_digit);
        // Versions stay far below 2^56, so an 8-byte little-endian one ends in a zero byte and is
        // never all ASCII digits: the two encodings cannot be confused.
        if is_decimal {
            let text = std::str::from_utf8(bytes).map_err(|_| corrupt("head"))?;
            let version = text.parse().map_err(|_| corrupt("head"))?;
            Ok(Head {
                version,
                encoding: IntEncoding::Decimal,
            })
        } else {
            let array: [u8; 8] = bytes.try_into().map_err(|_| corrupt("head"))?;
            let version = u64::try_from(i64::from_le_bytes(array)).map_err(|_| corrupt("head"))?;
            Ok(Head {
                version,
                encoding: IntEncoding::LittleEndian,
            })
        }
    }

    pub(super) fn encode(version: u64, encoding: IntEncoding) -> Vec<u8> {
        match encoding {
            IntEncoding::LittleEndian => (version as i64).to_le_bytes().to_vec(),
            IntEncoding::Decimal => version.to_string().into_bytes(),
        }
    }
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError(format!("unreadable {what} value"))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("serialise: {e}")))
}
