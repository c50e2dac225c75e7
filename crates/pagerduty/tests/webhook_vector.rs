//! PagerDuty's published Webhooks v3 signature vector must verify, and must stop verifying when
//! any single byte of the body changes.

use pagerduty::webhook::{SignatureError, sign, verify};

struct Vector {
    secret: String,
    header: String,
    body: Vec<u8>,
}

fn vector() -> Vector {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/webhook-v3-vector"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/vector.json")).unwrap()).unwrap();
    Vector {
        secret: meta["secret"].as_str().unwrap().to_owned(),
        header: meta["signature_header"].as_str().unwrap().to_owned(),
        body: std::fs::read(format!("{dir}/{}", meta["body_file"].as_str().unwrap())).unwrap(),
    }
}

#[test]
fn published_vector_verifies() {
    let v = vector();
    assert_eq!(verify(Some(&v.header), &v.body, &[&v.secret]), Ok(()));
    // Our signer produces exactly PagerDuty's header for the same secret and body.
    assert_eq!(sign(v.secret.as_bytes(), &v.body), v.header);
}

#[test]
fn any_changed_byte_fails() {
    let v = vector();
    // Every position, not a sample: the body is small and this is the property that matters.
    for i in 0..v.body.len() {
        let mut body = v.body.clone();
        body[i] ^= 0x01;
        assert_eq!(
            verify(Some(&v.header), &body, &[&v.secret]),
            Err(SignatureError::Mismatch),
            "flipping byte {i} still verified"
        );
    }
    let mut secret = v.secret.clone().into_bytes();
    secret[0] ^= 0x01;
    assert_eq!(
        verify(Some(&v.header), &v.body, &[&secret]),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn vector_verifies_during_rotation() {
    let v = vector();
    let rotated = format!("v1={}, {}", "0".repeat(64), v.header);
    assert_eq!(
        verify(Some(&rotated), &v.body, &["old-secret", v.secret.as_str()]),
        Ok(())
    );
}
