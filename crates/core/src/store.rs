//! `artifact_store`: the artifact through object storage (pure). With
//! `artifact_store = "s3://bucket/prefix"` the deploying machine uploads the artifact once,
//! at `<prefix>/<sha256>.tar.zst`, and each host that lacks it downloads it itself from a
//! presigned URL the driver sends it on the conversation (never on a command line), then
//! checks its sha256 as for an artifact sent over ssh.
//!
//! What is here is data: which URLs are accepted, the object's name, and [`Presigned`], the
//! download URL that must never be shown in full (it is a bearer token). The upload and the
//! signing are the binary's (`cargo-ship/src/store.rs`); the host's side is
//! [`crate::protocol::upload_step`].

use std::fmt;

/// The URL schemes an artifact store may have: those whose objects a host can fetch over
/// HTTP(S) from a presigned URL (a `file://` store could not be reached by the hosts).
pub(crate) const SCHEMES: [&str; 5] = ["s3", "s3a", "gs", "az", "azure"];

/// Checks an `artifact_store` URL: a scheme of [`SCHEMES`], a bucket, no credentials, no
/// query. The error is the sentence to show after the key.
pub(crate) fn check(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL; expected e.g. \"s3://bucket/prefix\" (schemes: {})",
            SCHEMES.join(", ")
        ));
    };
    if !SCHEMES.contains(&scheme) {
        return Err(format!(
            "scheme `{scheme}` is not one hosts can download from with a presigned URL; expected one of: {}",
            SCHEMES.join(", ")
        ));
    }
    let bucket = rest.split('/').next().unwrap_or_default();
    if bucket.contains('@') {
        return Err(
            "the URL holds credentials; give them in the environment (AWS_ACCESS_KEY_ID, ...) instead, never in the configuration"
                .to_owned(),
        );
    }
    if bucket.is_empty() {
        return Err(format!(
            "{url:?} names no bucket; expected \"{scheme}://bucket/prefix\""
        ));
    }
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?}: expected \"{scheme}://bucket/prefix\", without a query, fragment or spaces"
        ));
    }
    Ok(())
}

/// The artifact's object in the store: `<store>/<digest>.tar.zst` (the store's URL without
/// a trailing `/`). This is what a plan records; it holds no credentials.
pub(crate) fn object_url(store: &str, digest: &str) -> String {
    format!("{}/{digest}.tar.zst", store.trim_end_matches('/'))
}

/// A presigned download URL: whoever holds it may read the object until it expires, so its
/// `Debug` and `Display` show it without its query (where the signature is). Only
/// [`Presigned::expose`] gives it whole, for the one line sent to a host.
#[derive(Clone, PartialEq, Eq)]
pub struct Presigned(String);

impl Presigned {
    /// Wraps a presigned URL. It must be one line with no `"` or `\`: the host passes it to
    /// curl in a config file's quoted string (a URL's own characters never need either).
    pub fn new(url: String) -> Result<Presigned, String> {
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
        {
            return Err(format!(
                "the presigned URL for {} has a space, quote or backslash",
                shown(&url)
            ));
        }
        Ok(Presigned(url))
    }

    /// The whole URL, signature included: only for the host's conversation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its query: what logs and errors may show.
    pub fn shown(&self) -> &str {
        shown(&self.0)
    }
}

fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

impl fmt::Debug for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presigned({}?…)", self.shown())
    }
}

impl fmt::Display for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}?…", self.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_buckets_of_downloadable_stores_only() {
        assert!(check("s3://bucket/some/prefix").is_ok());
        assert!(check("gs://bucket").is_ok());
        assert!(
            check("file:///tmp/x")
                .unwrap_err()
                .contains("scheme `file`")
        );
        assert!(
            check("s3://key:secret@bucket/p")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check("s3:///p").unwrap_err().contains("no bucket"));
        assert!(
            check("s3://b/p?x=1")
                .unwrap_err()
                .contains("without a query")
        );
        assert!(check("bucket").unwrap_err().contains("not a URL"));
    }

    #[test]
    fn the_object_is_named_by_digest() {
        assert_eq!(object_url("s3://b/p/", "ab12"), "s3://b/p/ab12.tar.zst");
        assert_eq!(object_url("s3://b", "ab12"), "s3://b/ab12.tar.zst");
    }

    #[test]
    fn a_presigned_url_is_never_shown_whole() {
        let p = Presigned::new("http://h:9/b/k.tar.zst?X-Amz-Signature=secret".to_owned()).unwrap();
        assert!(!format!("{p} {p:?}").contains("secret"));
        assert_eq!(p.shown(), "http://h:9/b/k.tar.zst");
        assert!(p.expose().contains("secret"));
        assert!(Presigned::new("http://h/\"x".to_owned()).is_err());
    }
}
