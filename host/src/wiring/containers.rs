//! Which containers of a workload tagship changes, and whether someone else changed them since.

use super::{ANNOTATION_AT, ANNOTATION_VERSION};
use crate::config;
use crate::version::{Version, image_repository};

/// Whether the image of `container` was set by someone else after tagship deployed: the
/// Deployment carries tagship's version annotation, the image's owner (by `managedFields`) is
/// another field manager, and the image is not that version. Said as people need it:
/// "serves v3.0.0, set by field manager `helm` at T; tagship deployed v3.1.0 at T'".
pub(super) fn drift(
    live: &crate::cluster::LiveDeployment,
    container: &str,
    serving: Option<&Version>,
) -> Option<String> {
    let deployed = live.annotations.get(ANNOTATION_VERSION)?;
    let owner = live.image_owners.get(container)?;
    if owner.manager == crate::cluster::FIELD_MANAGER
        || serving.is_some_and(|v| v.as_str() == deployed.as_str())
    {
        return None;
    }
    let serves = serving.map_or_else(
        || format!("`{}`", live.image_of(container).map_or("", String::as_str)),
        ToString::to_string,
    );
    let when = |at: Option<&String>| at.map(|t| format!(" at {t}")).unwrap_or_default();
    Some(format!(
        "serves {serves}, set by field manager `{}`{}; tagship deployed {deployed}{}",
        owner.manager,
        when(owner.time.as_ref()),
        when(live.annotations.get(ANNOTATION_AT))
    ))
}

/// The containers (and init containers) of `live` whose image tagship sets for `workload`:
/// those it names, each of which must run one of `repositories`; by default every one running
/// one of them. The error completes a sentence about the Deployment ("… has no container …").
pub(super) fn component_containers(
    workload: &config::Workload,
    live: &crate::cluster::LiveDeployment,
    repositories: &[&str],
) -> Result<Vec<String>, String> {
    let is_component = |image: &str| repositories.contains(&image_repository(image));
    let has = || {
        live.all_images()
            .map(|(name, image)| format!("`{name}` ({image})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if workload.containers.is_empty() {
        let containers: Vec<String> = live
            .all_images()
            .filter(|(_, image)| is_component(image))
            .map(|(name, _)| name.clone())
            .collect();
        if containers.is_empty() {
            return Err(format!(
                "runs no container of the component's image {} (it has: {}); name the container in `containers` of the workload, or fix the image repository (`image` in [component] or the stage)",
                crate::config::quoted_list(repositories.iter().copied()),
                has()
            ));
        }
        return Ok(containers);
    }
    for name in &workload.containers {
        match live.image_of(name) {
            None => {
                return Err(format!(
                    "has no container `{name}` (it has: {}); fix `containers` of the workload",
                    has()
                ));
            }
            Some(image) if !is_component(image) => {
                return Err(format!(
                    "has container `{name}` running `{image}`, not the component's image {}; tagship changes only the component's containers: remove `{name}` from `containers` of the workload",
                    crate::config::quoted_list(repositories.iter().copied())
                ));
            }
            Some(_) => {}
        }
    }
    Ok(workload.containers.clone())
}
