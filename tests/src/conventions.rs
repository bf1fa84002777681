//! The documented conventions of the local environment, as pure functions: what an image tag means
//! to the kubelet stand-in and to the traffic simulator, and how a namespace maps to `env` and
//! `stage`. No I/O here; both stand-ins and the tests read their rules from this one place.
//!
//! See `tests/README.md` for the same rules in prose.

/// What a container image tag asks the stand-ins to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent tag words, each one flag"
)]
pub struct Behaviour {
    /// The container never becomes Ready: `CrashLoopBackOff` with a growing `restartCount`.
    pub crashloop: bool,
    /// A Job pod ends `Failed` instead of `Succeeded`.
    pub fails: bool,
    /// Simulated traffic answers 20% of requests with a 5xx.
    pub errors: bool,
    /// Simulated traffic is slow: most requests take over a second.
    pub slow: bool,
}

/// Tag word that keeps a container in `CrashLoopBackOff`.
pub const CRASHLOOP: &str = "crashloop";
/// Tag (or command/argument) word that makes a Job pod fail.
pub const FAIL: &str = "fail";
/// Prefix of a Job command or argument word that keeps the Job's pod running that many
/// milliseconds (after the start-up delay) before it ends: `runs-for-ms=2000`.
pub const RUNS_FOR_MS: &str = "runs-for-ms=";
/// Tag word that makes simulated traffic fail 20% of the time.
pub const ERRORS: &str = "errors";
/// Tag word that makes simulated traffic slow.
pub const SLOW: &str = "slow";
/// Suffix stripped from a tag to get the version the registry reports.
pub const VERSION_SUFFIX: &str = "-gitlab";
/// Namespace suffix that marks the canary stage.
pub const CANARY_SUFFIX: &str = "-cny";

/// The tag of an image reference: `registry.local/registry:v3.1.0-gitlab@sha256:..` → `v3.1.0-gitlab`.
/// An image without a tag has the tag `latest`, as for a container runtime.
pub fn image_tag(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => "latest",
    }
}

/// The version a registry running `image` reports: its tag without the `-gitlab` suffix.
pub fn version_of_image(image: &str) -> &str {
    let tag = image_tag(image);
    tag.strip_suffix(VERSION_SUFFIX).unwrap_or(tag)
}

/// What the tag of `image` asks for. `fail` is only read from the tag here; Job pods also look at
/// their command and arguments (see [`job_fails`]).
pub fn behaviour_of_image(image: &str) -> Behaviour {
    let tag = image_tag(image);
    Behaviour {
        crashloop: tag.contains(CRASHLOOP),
        fails: tag.contains(FAIL),
        errors: tag.contains(ERRORS),
        slow: tag.contains(SLOW),
    }
}

/// Whether a Job container with this image, command and arguments ends `Failed`.
pub fn job_fails<'a>(image: &str, command_and_args: impl IntoIterator<Item = &'a str>) -> bool {
    behaviour_of_image(image).fails || command_and_args.into_iter().any(|word| word.contains(FAIL))
}

/// How long a Job pod with these command and argument words runs: the value of its
/// [`RUNS_FOR_MS`] word, else not at all.
pub fn job_runs_for<'a>(
    command_and_args: impl IntoIterator<Item = &'a str>,
) -> std::time::Duration {
    command_and_args
        .into_iter()
        .find_map(|word| word.strip_prefix(RUNS_FOR_MS)?.parse().ok())
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis)
}

/// The `env` and `stage` labels of a namespace: `gstg-cny` → (`gstg`, `cny`); `gstg` → (`gstg`, `main`).
pub fn env_and_stage(namespace: &str) -> (&str, &str) {
    match namespace.strip_suffix(CANARY_SUFFIX) {
        Some(env) if !env.is_empty() => (env, "cny"),
        _ => (namespace, "main"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_part_after_the_last_colon_of_the_last_path_segment() {
        for (image, tag) in [
            ("registry.local/registry:v3.1.0-gitlab", "v3.1.0-gitlab"),
            ("localhost:5000/registry:v1", "v1"),
            ("localhost:5000/registry", "latest"),
            ("nginx", "latest"),
            ("nginx:1.25@sha256:abcd", "1.25"),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn the_version_is_the_tag_without_the_gitlab_suffix() {
        assert_eq!(version_of_image("r/registry:v3.1.0-gitlab"), "v3.1.0");
        assert_eq!(version_of_image("r/registry:v3.1.0"), "v3.1.0");
        assert_eq!(
            version_of_image("r/registry:v3.2.0-errors-gitlab"),
            "v3.2.0-errors"
        );
    }

    #[test]
    fn tag_words_select_behaviours() {
        let b = behaviour_of_image("r/registry:v2-crashloop");
        assert!(b.crashloop && !b.errors && !b.slow && !b.fails);
        let b = behaviour_of_image("r/registry:v2-errors-slow-gitlab");
        assert!(b.errors && b.slow && !b.crashloop);
        assert_eq!(
            behaviour_of_image("r/registry:v2.0.0-gitlab"),
            Behaviour {
                crashloop: false,
                fails: false,
                errors: false,
                slow: false
            }
        );
    }

    #[test]
    fn a_job_fails_when_its_tag_or_its_command_says_fail() {
        assert!(job_fails("r/migrate:v1-fail", []));
        assert!(job_fails("r/migrate:v1", ["sh", "-c", "exit fail"]));
        assert!(!job_fails("r/migrate:v1", ["sh", "-c", "true"]));
    }

    #[test]
    fn a_cny_suffix_is_the_canary_stage_and_anything_else_the_main_stage() {
        assert_eq!(env_and_stage("gstg-cny"), ("gstg", "cny"));
        assert_eq!(env_and_stage("gstg"), ("gstg", "main"));
        assert_eq!(env_and_stage("t-abc-cny"), ("t-abc", "cny"));
        assert_eq!(env_and_stage("-cny"), ("-cny", "main"));
    }
}
