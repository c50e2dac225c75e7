//! Authentication of ingest routes: a bearer token, or an HMAC of the body, per route.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// How a route checks its callers.
#[derive(Clone)]
pub enum RouteAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// A header carrying the hex HMAC-SHA256 of the raw body with `secret`, after `prefix`
    /// (GitHub-style `X-Hub-Signature-256: sha256=...`, for instance).
    Hmac {
        secret: String,
        header: String,
        prefix: String,
    },
}

impl std::fmt::Debug for RouteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs.
        match self {
            RouteAuth::Bearer(_) => f.write_str("Bearer(***)"),
            RouteAuth::Hmac { header, prefix, .. } => {
                write!(f, "Hmac {{ header: {header:?}, prefix: {prefix:?} }}")
            }
        }
    }
}

/// Why a request was refused: said in the 401 body, without revealing the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer token")]
    MissingBearer,
    #[error("the bearer token is not valid for this route")]
    WrongBearer,
    #[error("missing {0} header with the body's HMAC-SHA256")]
    MissingSignature(String),
    #[error("the {0} header does not match the body's HMAC-SHA256")]
    WrongSignature(String),
}

impl RouteAuth {
    pub fn check(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        match self {
            RouteAuth::Bearer(token) => {
                let given = headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
                    .ok_or(AuthError::MissingBearer)?;
                if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    Ok(())
                } else {
                    Err(AuthError::WrongBearer)
                }
            }
            RouteAuth::Hmac {
                secret,
                header,
                prefix,
            } => {
                let given = headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .ok_or_else(|| AuthError::MissingSignature(header.clone()))?;
                let hex_sig = given.strip_prefix(prefix.as_str()).unwrap_or(given);
                let sig =
                    hex::decode(hex_sig).map_err(|_| AuthError::WrongSignature(header.clone()))?;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                    .expect("HMAC accepts keys of any length");
                mac.update(body);
                // verify_slice compares in constant time.
                mac.verify_slice(&sig)
                    .map_err(|_| AuthError::WrongSignature(header.clone()))
            }
        }
    }
}

/// The header value a sender puts for `body` under `auth` (for tests and documentation).
pub fn hmac_signature(secret: &str, prefix: &str, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("{prefix}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let a = RouteAuth::Bearer("s3cret".into());
        assert_eq!(
            a.check(&headers(&[("authorization", "Bearer s3cret")]), b""),
            Ok(())
        );
        assert_eq!(
            a.check(&headers(&[("authorization", "Bearer s3cre")]), b""),
            Err(AuthError::WrongBearer)
        );
        assert_eq!(
            a.check(&headers(&[("authorization", "Basic s3cret")]), b""),
            Err(AuthError::MissingBearer)
        );
        assert_eq!(
            a.check(&HeaderMap::new(), b""),
            Err(AuthError::MissingBearer)
        );
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn hmac_signatures_cover_the_exact_body() {
        let a = RouteAuth::Hmac {
            secret: "k".into(),
            header: "x-signature".into(),
            prefix: "sha256=".into(),
        };
        let sig = hmac_signature("k", "sha256=", b"{\"a\":1}");
        assert_eq!(
            a.check(&headers(&[("x-signature", &sig)]), b"{\"a\":1}"),
            Ok(())
        );
        assert_eq!(
            a.check(&headers(&[("x-signature", &sig)]), b"{\"a\":2}"),
            Err(AuthError::WrongSignature("x-signature".into()))
        );
        assert_eq!(
            a.check(&headers(&[("x-signature", "sha256=zz")]), b""),
            Err(AuthError::WrongSignature("x-signature".into()))
        );
        assert_eq!(
            a.check(&HeaderMap::new(), b""),
            Err(AuthError::MissingSignature("x-signature".into()))
        );
    }
}
