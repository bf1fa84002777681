//! Namespaces of a test's own.

use super::environment::{kubectl_in, kubectl_ok_in};

/// A namespace of its own in one cluster, deleted (without waiting) when dropped.
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// The kubeconfig context it is in.
    pub context: String,
}

impl Namespace {
    /// Creates `name` in `context`.
    pub fn create(context: &str, name: &str) -> Self {
        kubectl_ok_in(context, &["create", "namespace", name]);
        Namespace {
            name: name.to_owned(),
            context: context.to_owned(),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if std::env::var_os("TAGSHIP_KUBECONFIG").is_none() {
            return;
        }
        let _ = kubectl_in(
            &self.context,
            &["delete", "namespace", &self.name, "--wait=false"],
        );
    }
}
