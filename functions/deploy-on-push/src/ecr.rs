//! The ECR read: what the pushed repository holds now. Observe only, never decide.

use std::collections::HashMap;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{ImageDetail, ImageIdentifier};
use chrono::{DateTime, Utc};
use nightshift::aws::CallError;

use crate::plan::{EcrImage, EcrImages, ImageId};

fn identifier(id: &ImageId) -> ImageIdentifier {
    match id {
        ImageId::Digest(digest) => ImageIdentifier::builder().image_digest(digest).build(),
        ImageId::Tag(tag) => ImageIdentifier::builder().image_tag(tag).build(),
    }
}

fn image(detail: &ImageDetail) -> Option<EcrImage> {
    let at = detail.image_pushed_at()?;
    Some(EcrImage {
        digest: detail.image_digest()?.to_owned(),
        tags: detail.image_tags().to_vec(),
        pushed_at: DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos())?,
    })
}

/// The images, each `None` when ECR does not have it. DescribeImages fails
/// the whole request when one image is unknown, so after such a refusal each
/// image is asked for on its own.
pub async fn describe_images(
    ecr: &Client,
    registry_id: &str,
    repository: &str,
    ids: &[ImageId],
) -> Result<EcrImages, CallError> {
    let target = format!("{registry_id}/{repository}");
    let ask = |batch: &[ImageId]| {
        ecr.describe_images()
            .registry_id(registry_id)
            .repository_name(repository)
            .set_image_ids(Some(batch.iter().map(identifier).collect()))
            .send()
    };
    let found = |details: &[ImageDetail], id: &ImageId| {
        details
            .iter()
            .find(|d| match id {
                ImageId::Digest(digest) => d.image_digest() == Some(digest.as_str()),
                ImageId::Tag(tag) => d.image_tags().iter().any(|t| t == tag),
            })
            .and_then(image)
    };
    match ask(ids).await {
        Ok(out) => return Ok(ids.iter().map(|id| (id.clone(), found(out.image_details(), id))).collect()),
        Err(err) => {
            let err = err.into_service_error();
            if err.code() != Some("ImageNotFoundException") {
                return Err(CallError::new("DescribeImages", &target, err));
            }
            if let [only] = ids {
                return Ok(HashMap::from([(only.clone(), None)]));
            }
        }
    }
    let mut images = HashMap::new();
    for id in ids {
        let described = match ask(std::slice::from_ref(id)).await {
            Ok(out) => found(out.image_details(), id),
            Err(err) => {
                let err = err.into_service_error();
                if err.code() != Some("ImageNotFoundException") {
                    return Err(CallError::new("DescribeImages", &target, err));
                }
                None
            }
        };
        images.insert(id.clone(), described);
    }
    Ok(images)
}

/// The manifest media types asked for: Docker's and OCI's, single and multi-platform.
const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The image manifest of `digest`, as JSON.
async fn manifest(
    ecr: &Client,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> Result<serde_json::Value, String> {
    let out = ecr
        .batch_get_image()
        .registry_id(registry_id)
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .set_accepted_media_types(Some(MEDIA_TYPES.map(str::to_owned).to_vec()))
        .send()
        .await
        .map_err(|e| {
            CallError::new("BatchGetImage", &format!("{registry_id}/{repository}"), e.into_service_error()).to_string()
        })?;
    if let Some(failure) = out.failures().first() {
        let code = failure.failure_code().map(|c| c.as_str().to_owned()).unwrap_or_default();
        return Err(format!(
            "BatchGetImage on {registry_id}/{repository}: {code} {}",
            failure.failure_reason().unwrap_or_default()
        ));
    }
    let text = out.images().first().and_then(|i| i.image_manifest()).ok_or("BatchGetImage answered no manifest")?;
    serde_json::from_str(text).map_err(|e| format!("the manifest of {digest} is not JSON: {e}"))
}

/// The labels of an image's config (`config.Labels`), as `(name, value)`:
/// its manifest (the first platform's, for a multi-platform image), then the
/// config blob, fetched from where GetDownloadUrlForLayer says. `Err` says which step failed.
pub async fn config_labels(
    ecr: &Client,
    http: &nightshift::signed::Connector,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut found = manifest(ecr, registry_id, repository, digest).await?;
    if let Some(first) =
        found.get("manifests").and_then(|m| m.get(0)).and_then(|m| m.get("digest")).and_then(|d| d.as_str())
    {
        found = manifest(ecr, registry_id, repository, first).await?;
    }
    let Some(config) = found.get("config").and_then(|c| c.get("digest")).and_then(|d| d.as_str()) else {
        return Ok(Vec::new());
    };
    let target = format!("{registry_id}/{repository}");
    let url = ecr
        .get_download_url_for_layer()
        .registry_id(registry_id)
        .repository_name(repository)
        .layer_digest(config)
        .send()
        .await
        .map_err(|e| CallError::new("GetDownloadUrlForLayer", &target, e.into_service_error()).to_string())?
        .download_url
        .ok_or("GetDownloadUrlForLayer answered no URL")?;
    let bytes = nightshift::aws::get_bytes(http, &url, &format!("ECR's download of the config {config}")).await?;
    let blob: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the config {config} is not JSON: {e}"))?;
    Ok(blob
        .pointer("/config/Labels")
        .and_then(|l| l.as_object())
        .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default())
}
