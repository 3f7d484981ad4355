//! `artifact_store` at apply time: the artifact uploaded once to object storage (kept when an
//! object of that digest and size is there already), and a presigned GET URL for the hosts
//! that lack it (see `ship_core::Presigned`). Credentials come from the command's environment
//! as object_store's `from_env` reads them (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...); hosts
//! get none, only the URL, which expires after [`URL_EXPIRY`].

use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use ship_core::Presigned;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a presigned URL is good for: a deploy's hosts download within it (they start
/// the upload step once every host is locked).
pub(crate) const URL_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// Artifacts larger than this go up in parts of this size.
const PART: usize = 32 << 20;

/// What [`publish`] did.
#[derive(Debug)]
pub(crate) struct Published {
    /// The URL the hosts are sent.
    pub(crate) url: Presigned,
    /// The bytes uploaded (0: the object was there).
    pub(crate) uploaded: u64,
}

/// A store, its signer (the same client) and the object's path in it.
type Opened = (Arc<dyn ObjectStore>, Arc<dyn Signer>, ObjectPath);

/// The settings of `env` (this process's environment, as the command was given it) whose
/// names start with `prefix`, as the builders' own `from_env` reads them.
fn settings<K: std::str::FromStr>(env: &[(String, String)], prefix: &str) -> Vec<(K, String)> {
    env.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v.clone())))
        .collect()
}

/// Opens the store of `object` (`s3://bucket/prefix/<digest>.tar.zst`, as the plan records
/// it) with the credentials and endpoint of `env`: the store, its signer and the object's
/// path in it.
fn open(object: &str, env: &[(String, String)]) -> Result<Opened, String> {
    use object_store::{aws, azure, gcp};
    let (scheme, rest) = object
        .split_once("://")
        .ok_or_else(|| format!("{object:?} is not a URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let root = format!("{scheme}://{bucket}");
    let path = ObjectPath::parse(key).map_err(|e| format!("{object}: {e}"))?;
    let fail = |e: object_store::Error| format!("{root}: {e}");
    match scheme {
        "s3" | "s3a" => {
            let b = settings(env, "AWS_").into_iter().fold(
                aws::AmazonS3Builder::default(),
                |b, (k, v): (aws::AmazonS3ConfigKey, _)| b.with_config(k, v),
            );
            let s = Arc::new(b.with_url(&root).build().map_err(fail)?);
            Ok((s.clone(), s, path))
        }
        "gs" => {
            let b = settings(env, "GOOGLE_").into_iter().fold(
                gcp::GoogleCloudStorageBuilder::default(),
                |b, (k, v): (gcp::GoogleConfigKey, _)| b.with_config(k, v),
            );
            let s = Arc::new(b.with_url(&root).build().map_err(fail)?);
            Ok((s.clone(), s, path))
        }
        "az" | "azure" => {
            let b = settings(env, "AZURE_").into_iter().fold(
                azure::MicrosoftAzureBuilder::default(),
                |b, (k, v): (azure::AzureConfigKey, _)| b.with_config(k, v),
            );
            let s = Arc::new(b.with_url(&root).build().map_err(fail)?);
            Ok((s.clone(), s, path))
        }
        other => Err(format!("scheme `{other}` is not an artifact store")),
    }
}

/// Uploads the artifact at `file` to `object` unless an object of that name and size is
/// there (its name is the sha256 of the tar, and the hosts check it), then signs a GET URL
/// for it. Errors name the object, never a signature.
pub(crate) async fn publish(
    object: &str,
    file: &Path,
    env: &[(String, String)],
) -> Result<Published, String> {
    let (store, signer, path) = open(object, env)?;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    let there = match store.head(&path).await {
        Ok(meta) => meta.size == size,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => return Err(format!("cannot read {object}: {e}")),
    };
    let uploaded = if there {
        0
    } else {
        upload(&*store, &path, file, size)
            .await
            .map_err(|e| format!("cannot upload the artifact to {object}: {e}"))?;
        size
    };
    let url = signer
        .signed_url(Method::GET, &path, URL_EXPIRY)
        .await
        .map_err(|e| format!("cannot sign a download URL for {object}: {e}"))?;
    let url = Presigned::new(url.to_string())?;
    Ok(Published { url, uploaded })
}

/// One PUT for an artifact up to [`PART`] bytes, else a multipart upload.
async fn upload(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    file: &Path,
    size: u64,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", file.display());
    if size <= PART as u64 {
        let bytes = std::fs::read(file).map_err(io)?;
        store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(io)?;
    let upload = store.put_multipart(path).await.map_err(|e| e.to_string())?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut buf = vec![0u8; PART];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        w.wait_for_capacity(4).await.map_err(|e| e.to_string())?;
        w.write(&buf[..n]);
    }
    w.finish().await.map_err(|e| e.to_string())?;
    Ok(())
}
