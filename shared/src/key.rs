//! The API key format: `<prefix>_<43 random base62 characters><6 base62 checksum characters>`.
//!
//! The 43 random characters carry 43·log2(62) ≈ 256.03 bits from the platform's secure random
//! source. The checksum is the CRC32 of everything before it (prefix, `_` and the random part),
//! written as 6 base62 digits, as GitHub's tokens do: a typo or a truncated paste is caught
//! without touching the store, and secret scanners can recognise the shape. Only the SHA-256 of
//! a key is ever stored ([`key_hash`]).

use sha2::{Digest, Sha256};

/// Number of random base62 characters in a key (43 · log2(62) ≥ 256 bits).
pub const RANDOM_CHARS: usize = 43;
/// Number of base62 characters of the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_CHARS: usize = 6;
/// Longest prefix accepted, in the `key_prefix` variable and in presented keys.
pub const MAX_PREFIX_LEN: usize = 32;
/// Number of random base62 characters in a public key id after `key_`.
const ID_RANDOM_CHARS: usize = 22;
const ID_PREFIX: &str = "key_";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Failure of the platform's secure random source.
#[derive(Debug)]
pub struct RandomUnavailable;

/// A freshly generated key: the secret (shown once), its hash and the public parts.
pub struct NewKey {
    /// The whole key, returned to the user once and never stored.
    pub secret: String,
    /// SHA-256 of `secret`, lower-case hex: the only trace of the key at rest.
    pub hash: String,
    /// The public id used to delete the key.
    pub id: String,
    /// What the user sees later to recognise the key: `<prefix>_...` and the last 4 characters.
    pub preview: String,
}

/// Whether `prefix` may start a key: 1 to [`MAX_PREFIX_LEN`] of `[A-Za-z0-9_]`, not ending in `_`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && !prefix.ends_with('_')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Generates a new key with `prefix` (which must satisfy [`is_valid_prefix`]).
pub fn generate(prefix: &str) -> Result<NewKey, RandomUnavailable> {
    let random = random_base62(RANDOM_CHARS)?;
    let unchecked = format!("{prefix}_{random}");
    let secret = format!("{unchecked}{}", checksum(&unchecked));
    let id = format!("{ID_PREFIX}{}", random_base62(ID_RANDOM_CHARS)?);
    Ok(NewKey {
        hash: key_hash(&secret),
        preview: preview(&secret),
        secret,
        id,
    })
}

/// Checks a presented key's shape and checksum; `Some(hash)` if it could be a key of ours.
///
/// Any prefix of the right shape is accepted, so that changing `key_prefix` does not break
/// keys already handed out; the hash lookup decides the rest.
pub fn parse(presented: &str) -> Option<String> {
    let body_len = RANDOM_CHARS + CHECKSUM_CHARS;
    let (unchecked_len, checksum_start) = (
        presented.len().checked_sub(CHECKSUM_CHARS)?,
        presented.len().checked_sub(body_len)?,
    );
    let prefix = presented.get(..checksum_start.checked_sub(1)?)?;
    let separator = presented.as_bytes()[checksum_start - 1];
    let body = presented.get(checksum_start..)?;
    if separator != b'_'
        || !is_valid_prefix(prefix)
        || !body.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    let (unchecked, given) = presented.split_at(unchecked_len);
    // Compared as numbers: decoding needs only base62's 256-byte table, where writing the
    // expected digits would bring its 7.7 KB encoding table into verify.
    let matches = base62::decode(given) == Ok(u128::from(crc32(unchecked)));
    matches.then(|| key_hash(presented))
}

/// SHA-256 of a key in lower-case hex: what the store knows a key by.
pub fn key_hash(secret: &str) -> String {
    sha256_hex(secret)
}

/// SHA-256 of any text in lower-case hex (used to turn a user id into a store-key segment).
pub fn sha256_hex(text: &str) -> String {
    // The digest's own lower-hex formatting: one pass, no string per byte.
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// A fresh random id for a change a request makes, by which it recognises its own write when
/// it reads the store back: `evt_` and 22 base62 characters (131 bits).
pub fn event_id() -> Result<String, RandomUnavailable> {
    Ok(format!("evt_{}", random_base62(ID_RANDOM_CHARS)?))
}

/// Whether `id` has the shape of a key id returned by create.
pub fn is_valid_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|rest| {
        rest.len() == ID_RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn preview(secret: &str) -> String {
    let prefix_end = secret.len() - RANDOM_CHARS - CHECKSUM_CHARS;
    format!(
        "{}...{}",
        &secret[..prefix_end],
        &secret[secret.len() - 4..]
    )
}

fn checksum(unchecked: &str) -> String {
    // base62 writes the shortest form; pad to a fixed width so the key length never varies.
    format!(
        "{:0>width$}",
        base62::encode_fmt(crc32(unchecked)).to_string(),
        width = CHECKSUM_CHARS
    )
}

/// The CRC-32 (ISO-HDLC, as zlib's) of `text`, byte by byte with one 1 KB table: crc32fast's
/// 16 KB slice-by-16 table would be the largest thing in `verify.wasm`, and computing bit by
/// bit cost verify 4 µs a request (measured with `perf`).
fn crc32(text: &str) -> u32 {
    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    CRC32.checksum(text.as_bytes())
}

/// `len` characters drawn uniformly from the base62 alphabet by rejection sampling
/// (bytes ≥ 248 = 4·62 are dropped so that every character is equally likely).
fn random_base62(len: usize) -> Result<String, RandomUnavailable> {
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buffer).map_err(|_| RandomUnavailable)?;
        for byte in buffer.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(*byte % 62)] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewKey {
        generate("ak").expect("random source")
    }

    #[test]
    fn generated_keys_parse_back_to_their_hash() {
        for prefix in ["ak", "sk_live", "X9"] {
            let key = generate(prefix).expect("random source");
            assert_eq!(parse(&key.secret), Some(key.hash.clone()));
            assert!(key.secret.starts_with(&format!("{prefix}_")));
            assert_eq!(
                key.secret.len(),
                prefix.len() + 1 + RANDOM_CHARS + CHECKSUM_CHARS
            );
        }
    }

    #[test]
    fn keys_use_only_header_and_url_safe_characters() {
        let key = sample();
        assert!(key
            .secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    #[test]
    fn random_part_carries_at_least_256_bits() {
        let bits = RANDOM_CHARS as f64 * 62f64.log2();
        assert!(bits >= 256.0, "{bits}");
    }

    #[test]
    fn keys_do_not_repeat() {
        let keys: std::collections::HashSet<String> = (0..1000).map(|_| sample().secret).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn random_characters_cover_the_whole_alphabet() {
        let text: String = (0..200)
            .map(|_| random_base62(43).expect("random"))
            .collect();
        for c in BASE62.iter() {
            assert!(text.as_bytes().contains(c), "{} never drawn", *c as char);
        }
    }

    #[test]
    fn checksum_catches_every_single_character_change() {
        let key = sample().secret;
        for position in 0..key.len() {
            for replacement in BASE62.iter().chain(b"_") {
                let mut bytes = key.clone().into_bytes();
                if bytes[position] == *replacement {
                    continue;
                }
                bytes[position] = *replacement;
                let changed = String::from_utf8(bytes).expect("ascii");
                assert_eq!(
                    parse(&changed),
                    None,
                    "change at {position} to {}",
                    *replacement as char
                );
            }
        }
    }

    #[test]
    fn truncated_extended_and_foreign_keys_are_rejected() {
        let key = sample().secret;
        for cut in 0..key.len() {
            assert_eq!(parse(&key[..cut]), None, "truncated to {cut}");
        }
        assert_eq!(parse(&format!("{key}x")), None);
        assert_eq!(parse(&format!(" {key}")), None);
        assert_eq!(parse(&key.replacen('_', "-", 1)), None);
        assert_eq!(parse(&format!("ak_{}é", &key[3..key.len() - 1])), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("ghp_0123456789"), None);
    }

    /// Keys already handed out must keep verifying whatever computes the checksum: these were
    /// made outside this crate (Python's `zlib.crc32`, base62 with digits, then A–Z, then a–z).
    #[test]
    fn keys_issued_before_keep_their_checksum() {
        for issued in [
            "ak_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg1UI0KZ",
            "sk_live_zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJ2WbIiC",
        ] {
            assert_eq!(parse(issued), Some(key_hash(issued)));
            let unchecked = &issued[..issued.len() - CHECKSUM_CHARS];
            assert_eq!(checksum(unchecked), issued[unchecked.len()..]);
        }
    }

    #[test]
    fn preview_shows_prefix_and_last_four() {
        let key = generate("sk_live").expect("random");
        assert!(key.preview.starts_with("sk_live_..."));
        assert!(key.secret.ends_with(&key.preview[key.preview.len() - 4..]));
        assert!(key.preview.len() < 20);
    }

    #[test]
    fn ids_have_their_own_shape() {
        let key = sample();
        assert!(is_valid_id(&key.id));
        assert!(!is_valid_id(&key.secret));
        assert!(!is_valid_id("key_short"));
        assert!(!is_valid_id(""));
    }

    #[test]
    fn prefix_rules() {
        assert!(is_valid_prefix("ak"));
        assert!(is_valid_prefix("sk_live"));
        assert!(!is_valid_prefix(""));
        assert!(!is_valid_prefix("ak_"));
        assert!(!is_valid_prefix("a-k"));
        assert!(!is_valid_prefix(&"a".repeat(MAX_PREFIX_LEN + 1)));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
