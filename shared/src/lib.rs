//! Everything the api-keys components share: the key format, the JWT check, request
//! validation, the error codes, configuration and the storage protocol.
//!
//! The handlers in `functions/` are thin: each parses, authenticates, validates, calls one
//! [`protocol`] function and maps the result with [`http::Reply`]. The Spin-specific glue lives in
//! [`spin`] (it compiles natively too, but only runs inside Spin); the rest runs natively in tests.

pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod introspection;
pub mod jwt;
pub mod key;
#[cfg(any(test, feature = "leak-alerts"))]
pub mod leak_alert;
pub mod protocol;
pub mod store;
pub mod token_revocation;
pub mod validate;
pub mod verification;
pub mod view;

pub mod spin;

/// In-memory model of Spin's SQLite store: for tests, and for the benchmark's seeding.
#[cfg(any(test, feature = "memory"))]
pub mod memory;

pub use error::ApiError;
pub use http::Reply;

/// Formats Unix seconds as an RFC 3339 UTC timestamp, e.g. `2026-11-27T10:00:00Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
