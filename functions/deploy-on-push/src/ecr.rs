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
