//! A deploy site on the local environment for end-to-end tests of the `tagship` binary: stage
//! namespaces with the registry's Deployment created in them "as Helm would" (in one or more
//! clusters), a `tagship.toml` written for them, and helpers to run the real binary and to read
//! the cluster back with `kubectl`, the independent witness.
//!
//! Needs the local environment: `tests/cluster/up` (with `--clusters 2` for tests that span two
//! clusters), then the variables of its `env` file exported (`set -a; . <state dir>/env; set +a`).
//! It never starts the environment and never runs cargo.
//!
//! Include it with `#[path = "support/site.rs"] mod site;`. Its parts are in `support/site/`,
//! all re-exported here: the environment and `kubectl`, running the binary, namespaces, sites,
//! their configuration, and Prometheus. The manifests and the `kubectl` command line are
//! `tagship_tests::fixtures`, shared with the crate of the local environment.
//!
//! ```ignore
//! let site = Site::builder("e2ex").clusters(&["local-1", "local-2"]).create();
//! let config = site.config().lock_wait("5s").pre_migration(&["migrate", "up"]).write();
//! let ran = deploy(&config, &["--version", "v2.0.0"]);
//! assert_eq!(ran.code, 0, "{}", ran.said);
//! assert_eq!(site.image("gstg"), image_of("v2.0.0"));
//! ```
//!
//! Every site has its own random prefix, so its namespaces (and therefore its Leases and history
//! `ConfigMap`s) are its own: tests run in parallel. Namespaces are deleted when the site is dropped.

#![allow(dead_code, reason = "each test crate uses part of this")]

#[path = "site/binary.rs"]
mod binary;
#[path = "site/config.rs"]
mod config;
#[path = "site/environment.rs"]
mod environment;
#[path = "site/namespaces.rs"]
mod namespaces;
#[path = "site/prometheus.rs"]
mod prometheus;
#[path = "site/sites.rs"]
mod sites;

// The parts, re-exported: tests name everything `site::…`.
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use binary::{
    Background, Ran, command, deploy, deploy_command, finish, path_str, run, tagship,
};
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use config::{ConfigBuilder, toml_list};
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use environment::{contexts, env, kubectl, kubectl_in, kubectl_ok, kubectl_ok_in, unique};
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use namespaces::Namespace;
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use prometheus::{eventually, prometheus_values};
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use sites::{Site, SiteBuilder, StageSpec, default_stages};
#[allow(unused_imports, reason = "each test crate uses part of this")]
pub use tagship_tests::fixtures::manifests::{
    CONFIG_MAP, DB_SECRET, DEPLOYMENT, IMAGE, REGISTRY_NEEDS, configuration_manifests,
    helm_deployment as deployment_manifest, image_of, set_component_tag,
};

/// The version every stage serves when the site is created (unless [`SiteBuilder::live`]).
pub const LIVE: &str = "v1.0.0";
/// The lock holder the binary runs as (`TAGSHIP_HOLDER`) unless a test says otherwise.
pub const HOLDER: &str = "e2e-test";
