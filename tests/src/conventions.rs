//! The documented conventions of the local environment, as pure functions: what an image tag means
//! to the kubelet stand-in and to the traffic simulator, what a container's command and argument
//! words ask of it, which digest the simulated registry gives a tag ([`manifest_digest`], with
//! Docker's split of a reference into registry host and repository name), and how a namespace maps
//! to `env` and `stage`. No I/O here; both stand-ins and the tests read their rules from this one
//! place.
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
    /// Pulling the image fails (`ErrImagePull`, then `ImagePullBackOff`).
    pub pullfail: bool,
    /// The simulated registry has no manifest for the tag (404 `MANIFEST_UNKNOWN`), so pulling it
    /// fails too.
    pub missing: bool,
}

/// Tag word that keeps a container in `CrashLoopBackOff`.
pub const CRASHLOOP: &str = "crashloop";
/// Tag (or command/argument) word that makes a Job pod fail.
pub const FAIL: &str = "fail";
/// Prefix of a Job command or argument word that keeps the Job's pod running that many
/// milliseconds (after the start-up delay) before it ends: `runs-for-ms=2000`.
pub const RUNS_FOR_MS: &str = "runs-for-ms=";
/// Tag word that makes pulling the image fail.
pub const PULLFAIL: &str = "pullfail";
/// Tag word the simulated registry has no manifest for.
pub const MISSING: &str = "missing";
/// Prefix of a command or argument word naming an environment variable the program needs set and
/// non-empty: `requires-env=REGISTRY_DATABASE_PASSWORD`.
pub const REQUIRES_ENV: &str = "requires-env=";
/// Prefix of a command or argument word naming a file the program needs: `requires-file=/etc/x.yml`.
pub const REQUIRES_FILE: &str = "requires-file=";
/// Prefix of an init container's command or argument word naming a file it writes:
/// `writes-file=/config/config.yml`.
pub const WRITES_FILE: &str = "writes-file=";
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
        pullfail: tag.contains(PULLFAIL),
        missing: tag.contains(MISSING),
    }
}

/// Whether a Job container with this image, command and arguments ends `Failed`. The words of
/// [`requirements`] and [`written_files`] name variables and paths, not outcomes: a
/// `requires-file=/etc/failover.yml` does not say `fail`.
pub fn job_fails<'a>(image: &str, command_and_args: impl IntoIterator<Item = &'a str>) -> bool {
    behaviour_of_image(image).fails
        || command_and_args
            .into_iter()
            .any(|word| word.contains(FAIL) && !names_a_need(word))
}

fn names_a_need(word: &str) -> bool {
    [REQUIRES_ENV, REQUIRES_FILE, WRITES_FILE]
        .iter()
        .any(|prefix| word.starts_with(prefix))
}

/// Something a container's program needs to start, from a `requires-env=` or `requires-file=` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement<'a> {
    /// An environment variable with a non-empty value.
    Env(&'a str),
    /// A file at this absolute path.
    File(&'a str),
}

/// What the program needs, in the order its words say it.
pub fn requirements<'a>(
    command_and_args: impl IntoIterator<Item = &'a str>,
) -> Vec<Requirement<'a>> {
    command_and_args
        .into_iter()
        .filter_map(|word| {
            word.strip_prefix(REQUIRES_ENV)
                .map(Requirement::Env)
                .or_else(|| word.strip_prefix(REQUIRES_FILE).map(Requirement::File))
        })
        .collect()
}

/// The paths an (init) container's program writes, from its `writes-file=` words.
pub fn written_files<'a>(command_and_args: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    command_and_args
        .into_iter()
        .filter_map(|word| word.strip_prefix(WRITES_FILE))
        .collect()
}

/// The registry host and the repository name of an image reference, by Docker's rule: the first
/// path segment is a host when it contains `.` or `:` or is `localhost`. Tag and digest are left
/// out, and no `docker.io/library/` is added: `registry.example.com/gitlab/registry:v1@sha256:..`
/// → (`Some("registry.example.com")`, `gitlab/registry`); `gitlab/registry` → (`None`,
/// `gitlab/registry`); `localhost:5000/registry` → (`Some("localhost:5000")`, `registry`).
pub fn registry_host_and_name(image: &str) -> (Option<&str>, &str) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (host, path) = match without_digest.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, without_digest),
    };
    let name = match path.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => path,
    };
    (host, name)
}

/// The digest the simulated registry gives the manifest of `name:tag` (`name` without the registry
/// host, see [`registry_host_and_name`]): `sha256:` and the hex SHA-256 of `<name>:<tag>`.
pub fn manifest_digest(name: &str, tag: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(format!("{name}:{tag}")))
    )
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
        let b = behaviour_of_image("r/registry:v2-pullfail@sha256:00");
        assert!(b.pullfail && !b.missing);
        assert!(behaviour_of_image("r/registry:v9-missing").missing);
        assert_eq!(
            behaviour_of_image("r/registry:v2.0.0-gitlab"),
            Behaviour {
                crashloop: false,
                fails: false,
                errors: false,
                slow: false,
                pullfail: false,
                missing: false,
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
    fn words_that_name_a_need_do_not_make_a_job_fail() {
        for (words, fails) in [
            (&["requires-file=/etc/failover.yml"][..], false),
            (&["requires-env=FAILURE_WEBHOOK"], false),
            (&["writes-file=/tmp/fail.log"], false),
            (&["requires-env=X", "--fail"], true),
        ] {
            assert_eq!(
                job_fails("r/migrate:v1", words.iter().copied()),
                fails,
                "{words:?}"
            );
        }
    }

    #[test]
    fn requirement_and_write_words_are_read_in_order() {
        let words = [
            "registry",
            "requires-env=REGISTRY_DATABASE_PASSWORD",
            "serve",
            "requires-file=/etc/docker/registry/config.yml",
            "writes-file=/config/config.yml",
        ];
        assert_eq!(
            requirements(words),
            vec![
                Requirement::Env("REGISTRY_DATABASE_PASSWORD"),
                Requirement::File("/etc/docker/registry/config.yml"),
            ]
        );
        assert_eq!(written_files(words), vec!["/config/config.yml"]);
        assert!(requirements(["serve"]).is_empty());
    }

    #[test]
    fn the_registry_host_is_a_first_segment_with_a_dot_or_colon_or_localhost() {
        for (image, host, name) in [
            (
                "registry.example.com/gitlab/registry:v3.1.0-gitlab@sha256:ab",
                Some("registry.example.com"),
                "gitlab/registry",
            ),
            (
                "registry.gitlab.com/gitlab-org/build/cng/gitlab-container-registry:v3.1.0-gitlab",
                Some("registry.gitlab.com"),
                "gitlab-org/build/cng/gitlab-container-registry",
            ),
            (
                "localhost:5000/registry:v1",
                Some("localhost:5000"),
                "registry",
            ),
            ("localhost/registry", Some("localhost"), "registry"),
            ("registry:5000/registry", Some("registry:5000"), "registry"),
            ("gitlab/registry:v1", None, "gitlab/registry"),
            ("nginx", None, "nginx"),
            ("nginx@sha256:ab", None, "nginx"),
        ] {
            assert_eq!(registry_host_and_name(image), (host, name), "{image}");
        }
    }

    #[test]
    fn the_manifest_digest_is_the_sha256_of_name_colon_tag() {
        // printf %s 'gitlab/registry:v3.1.0-gitlab' | sha256sum
        assert_eq!(
            manifest_digest("gitlab/registry", "v3.1.0-gitlab"),
            "sha256:b9e3bf4275620b71429ed292c5843742629cba877c5615eb8badb2840c890df7"
        );
        assert_ne!(
            manifest_digest("gitlab/registry", "v3.1.0-gitlab"),
            manifest_digest("gitlab/registry", "v3.1.1-gitlab")
        );
        let digest = manifest_digest("a", "b");
        assert_eq!(digest.len(), "sha256:".len() + 64);
    }

    #[test]
    fn a_cny_suffix_is_the_canary_stage_and_anything_else_the_main_stage() {
        assert_eq!(env_and_stage("gstg-cny"), ("gstg", "cny"));
        assert_eq!(env_and_stage("gstg"), ("gstg", "main"));
        assert_eq!(env_and_stage("t-abc-cny"), ("t-abc", "cny"));
        assert_eq!(env_and_stage("-cny"), ("-cny", "main"));
    }
}
