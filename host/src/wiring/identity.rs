//! Who this run is: its lock holder identity (`WHO#RUN`) and the default holder of a deploy.

use crate::holder::Holder;

/// The default lock holder of a deploy run.
pub fn holder(reason: String) -> Holder {
    Holder {
        who: default_holder(),
        reason: Some(reason),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
        since: None,
    }
}

/// This run's holder identity: who runs it and which run it is, `WHO#RUN` (see
/// [`crate::holder::holder_parts`]).
///
/// Who: `TAGSHIP_HOLDER`, else the GitLab user (`GITLAB_USER_LOGIN`), else `USER@HOSTNAME`.
/// The run: in a GitLab CI job, its pipeline and job name, so the same job run again (a retry)
/// takes over its own lock; elsewhere a random id per process, so two terminals of one person
/// are two holders, and Ctrl-C in one never releases the other's lock.
pub fn default_holder() -> String {
    format!("{}#{}", holder_who(), run_id())
}

/// Who runs tagship, for the lock and the history.
pub fn holder_who() -> String {
    if let Ok(holder) = std::env::var("TAGSHIP_HOLDER") {
        return holder;
    }
    if let Ok(user) = std::env::var("GITLAB_USER_LOGIN") {
        return user;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = fs_err::read_to_string("/etc/hostname")
        .map_or_else(|_| "localhost".into(), |h| h.trim().to_owned());
    format!("{user}@{host}")
}

/// Which run this is: `pipeline-ID/JOB` in GitLab CI, else `run-` and a random id (fixed for
/// the life of the process).
fn run_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        if let (Ok(pipeline), Ok(job)) = (
            std::env::var("CI_PIPELINE_ID"),
            std::env::var("CI_JOB_NAME"),
        ) {
            return format!("pipeline-{pipeline}/{job}");
        }
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        format!("run-{:08x}", hasher.finish() & 0xffff_ffff)
    })
    .clone()
}
