//! Verification of the HS256 JSON Web Tokens that sign users in to create, list and delete.
//!
//! Only `HS256` is accepted: the algorithm is fixed by configuration, never taken from the token
//! (so `alg: none` and algorithm-confusion tokens fail). The signature is checked in constant
//! time with `hmac` before any claim is trusted. Claims: `sub` (1–256 characters) and `exp` are
//! required, `nbf` is honoured, `iss`/`aud` must match when configured, and a token with an
//! `aud` is refused when no audience is configured (it was meant for someone else); 60 s of
//! clock leeway.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Clock leeway for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// Longest accepted user id (`sub`), in characters.
pub const MAX_SUBJECT_CHARS: usize = 256;
/// Longest accepted token, in bytes: a guard against pathological headers.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a token must satisfy besides its signature.
pub struct Expectations<'a> {
    /// The HMAC secret (Spin variable `jwt_secret`).
    pub secret: &'a [u8],
    /// Required `iss`, if configured.
    pub issuer: Option<&'a str>,
    /// Required `aud` (a string, or one element of an array), if configured; if not, a token
    /// that has an `aud` at all is refused.
    pub audience: Option<&'a str>,
    /// The current time, seconds since the Unix epoch.
    pub now: i64,
}

/// Why a token was refused: for logs only, never for the client.
pub type Refusal = &'static str;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
    aud: Option<serde_json::Value>,
}

/// Extracts the token from an `Authorization` header value (`Bearer <token>`).
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, Refusal> {
    let value = authorization.ok_or("no Authorization header")?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or("malformed Authorization header")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Authorization scheme is not Bearer");
    }
    Ok(token.trim())
}

/// Verifies `token` and returns its subject, the user id.
pub fn verify(token: &str, expect: &Expectations) -> Result<String, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token too long");
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is not three dot-separated parts");
    };

    let header: Header = decode_json(header_b64).ok_or("undecodable header")?;
    if header.alg != "HS256" {
        return Err("algorithm is not HS256");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| "undecodable signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(expect.secret).map_err(|_| "unusable secret")?;
    mac.update(&token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()]);
    mac.verify_slice(&signature).map_err(|_| "bad signature")?;

    // Only now, with the signature verified, are the claims worth reading.
    let claims: Claims = decode_json(claims_b64).ok_or("undecodable claims")?;
    let exp = claims
        .exp
        .as_ref()
        .and_then(numeric_date)
        .ok_or("missing or invalid exp")?;
    if expect.now > exp.saturating_add(LEEWAY_SECONDS) {
        return Err("expired");
    }
    if let Some(nbf) = claims.nbf.as_ref() {
        let nbf = numeric_date(nbf).ok_or("invalid nbf")?;
        if expect.now.saturating_add(LEEWAY_SECONDS) < nbf {
            return Err("not yet valid");
        }
    }
    if let Some(issuer) = expect.issuer {
        if claims.iss.as_ref().and_then(|v| v.as_str()) != Some(issuer) {
            return Err("wrong issuer");
        }
    }
    match (expect.audience, claims.aud.as_ref()) {
        (None, None) => {}
        // RFC 7519 §4.1.3: a recipient that does not identify itself with a value in `aud`
        // must reject the token. Without `jwt_audience` this service names no audience, so a
        // token meant for someone (another service sharing the secret) is not for it.
        (None, Some(_)) => return Err("aud present but jwt_audience is not set"),
        (Some(audience), aud) => {
            let matches = match aud {
                Some(serde_json::Value::String(aud)) => aud == audience,
                Some(serde_json::Value::Array(auds)) => {
                    auds.iter().any(|a| a.as_str() == Some(audience))
                }
                _ => false,
            };
            if !matches {
                return Err("wrong audience");
            }
        }
    }
    let subject = claims
        .sub
        .as_ref()
        .and_then(|v| v.as_str())
        .ok_or("missing sub")?;
    let length = subject.chars().count();
    if length == 0 || length > MAX_SUBJECT_CHARS {
        return Err("sub is empty or too long");
    }
    Ok(subject.to_owned())
}

/// Signs `claims` with HS256: for tests, tools and the README's local-token recipe.
pub fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JWT NumericDate: seconds since the epoch, possibly with a fraction (truncated).
fn numeric_date(value: &serde_json::Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret-of-reasonable-length";
    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            secret: SECRET,
            issuer: None,
            audience: None,
            now: NOW,
        }
    }

    fn token(claims: serde_json::Value) -> String {
        sign(&claims, SECRET)
    }

    fn with_header(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!(
            "{h}.{p}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn a_valid_token_yields_its_subject() {
        let t = token(json!({"sub": "user-1", "exp": NOW + 60}));
        assert_eq!(verify(&t, &expect()), Ok("user-1".into()));
    }

    #[test]
    fn unicode_subjects_are_kept_as_they_are() {
        let t = token(json!({"sub": "Zoë 🐙", "exp": NOW + 60}));
        assert_eq!(verify(&t, &expect()), Ok("Zoë 🐙".into()));
    }

    #[test]
    fn alg_none_is_refused() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(json!({"sub": "u", "exp": NOW + 60}).to_string());
        assert!(verify(&format!("{h}.{p}."), &expect()).is_err());
        assert!(verify(&format!("{h}.{p}"), &expect()).is_err());
    }

    #[test]
    fn other_algorithms_are_refused_even_when_signed_with_the_secret() {
        for alg in ["HS384", "HS512", "RS256", "ES256", "hs256"] {
            let t = with_header(
                &format!(r#"{{"alg":"{alg}"}}"#),
                json!({"sub": "u", "exp": NOW + 60}),
                SECRET,
            );
            assert_eq!(
                verify(&t, &expect()),
                Err("algorithm is not HS256"),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let other = sign(&json!({"sub": "u", "exp": NOW + 60}), b"another-secret");
        assert_eq!(verify(&other, &expect()), Err("bad signature"));
        let good = token(json!({"sub": "u", "exp": NOW + 60}));
        let (head, _) = good.rsplit_once('.').unwrap();
        assert!(verify(&format!("{head}.AAAA"), &expect()).is_err());
        // Claims swapped after signing.
        let forged_claims =
            URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "exp": NOW + 60}).to_string());
        let parts: Vec<&str> = good.split('.').collect();
        assert_eq!(
            verify(
                &format!("{}.{forged_claims}.{}", parts[0], parts[2]),
                &expect()
            ),
            Err("bad signature")
        );
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let just_expired = token(json!({"sub": "u", "exp": NOW - LEEWAY_SECONDS}));
        assert!(verify(&just_expired, &expect()).is_ok());
        let expired = token(json!({"sub": "u", "exp": NOW - LEEWAY_SECONDS - 1}));
        assert_eq!(verify(&expired, &expect()), Err("expired"));
    }

    #[test]
    fn exp_is_required_and_numeric() {
        assert!(verify(&token(json!({"sub": "u"})), &expect()).is_err());
        assert!(verify(&token(json!({"sub": "u", "exp": "tomorrow"})), &expect()).is_err());
        assert!(verify(
            &token(json!({"sub": "u", "exp": (NOW + 60) as f64 + 0.5})),
            &expect()
        )
        .is_ok());
    }

    #[test]
    fn nbf_is_honoured_with_leeway() {
        let soon = token(json!({"sub": "u", "exp": NOW + 600, "nbf": NOW + LEEWAY_SECONDS}));
        assert!(verify(&soon, &expect()).is_ok());
        let later = token(json!({"sub": "u", "exp": NOW + 600, "nbf": NOW + LEEWAY_SECONDS + 1}));
        assert_eq!(verify(&later, &expect()), Err("not yet valid"));
    }

    #[test]
    fn issuer_and_audience_must_match_when_configured() {
        let e = Expectations {
            issuer: Some("https://auth.example"),
            audience: Some("api-keys"),
            ..expect()
        };
        let good = token(
            json!({"sub": "u", "exp": NOW + 60, "iss": "https://auth.example", "aud": "api-keys"}),
        );
        assert!(verify(&good, &e).is_ok());
        let in_array = token(
            json!({"sub": "u", "exp": NOW + 60, "iss": "https://auth.example", "aud": ["x", "api-keys"]}),
        );
        assert!(verify(&in_array, &e).is_ok());
        let wrong_iss =
            token(json!({"sub": "u", "exp": NOW + 60, "iss": "https://evil", "aud": "api-keys"}));
        assert_eq!(verify(&wrong_iss, &e), Err("wrong issuer"));
        let wrong_aud = token(
            json!({"sub": "u", "exp": NOW + 60, "iss": "https://auth.example", "aud": "other"}),
        );
        assert_eq!(verify(&wrong_aud, &e), Err("wrong audience"));
        let missing = token(json!({"sub": "u", "exp": NOW + 60}));
        assert!(verify(&missing, &e).is_err());
        // No issuer configured: `iss` is not checked.
        let any_iss = token(json!({"sub": "u", "exp": NOW + 60, "iss": "https://elsewhere"}));
        assert!(verify(&any_iss, &expect()).is_ok());
    }

    #[test]
    fn without_a_configured_audience_a_token_with_any_aud_is_refused() {
        // Another service's tokens, signed with a shared secret, carry that service's `aud`.
        for aud in [
            json!("other-service"),
            json!("api-keys"),
            json!(["other-service", "api-keys"]),
            json!([]),
            json!(""),
        ] {
            let t = token(json!({"sub": "u", "exp": NOW + 60, "aud": aud}));
            assert_eq!(
                verify(&t, &expect()),
                Err("aud present but jwt_audience is not set"),
                "{aud}"
            );
        }
        // A token that names no audience is still accepted.
        let no_aud = token(json!({"sub": "u", "exp": NOW + 60}));
        assert_eq!(verify(&no_aud, &expect()), Ok("u".into()));
        let null_aud = token(json!({"sub": "u", "exp": NOW + 60, "aud": null}));
        assert_eq!(verify(&null_aud, &expect()), Ok("u".into()));
    }

    #[test]
    fn sub_is_required_and_bounded() {
        assert_eq!(
            verify(&token(json!({"exp": NOW + 60})), &expect()),
            Err("missing sub")
        );
        assert_eq!(
            verify(&token(json!({"sub": 42, "exp": NOW + 60})), &expect()),
            Err("missing sub")
        );
        assert!(verify(&token(json!({"sub": "", "exp": NOW + 60})), &expect()).is_err());
        let longest = "é".repeat(MAX_SUBJECT_CHARS);
        assert!(verify(&token(json!({"sub": longest, "exp": NOW + 60})), &expect()).is_ok());
        let too_long = "a".repeat(MAX_SUBJECT_CHARS + 1);
        assert!(verify(&token(json!({"sub": too_long, "exp": NOW + 60})), &expect()).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for t in ["", "a.b", "a.b.c.d", "....", "not a token", "e30.e30.e30"] {
            assert!(verify(t, &expect()).is_err(), "{t}");
        }
    }

    #[test]
    fn only_the_bearer_scheme_is_accepted() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert!(bearer_token(Some("Basic dXNlcjpwYXNz")).is_err());
        assert!(bearer_token(Some("abc")).is_err());
        assert!(bearer_token(None).is_err());
    }
}
