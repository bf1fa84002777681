//! The two stand-in binaries' command lines: `--name value` pairs, nothing more, so the binaries
//! stay twenty lines and need no argument-parsing dependency.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use kube::Client;

/// Parsed `--name value` options.
#[derive(Debug, Default)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// Parses `args` (without the program name); every option is `--name value`; `--help` prints `usage`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        usage: &str,
        known: &[&str],
    ) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                bail!("unexpected argument `{arg}`\n\n{usage}")
            };
            if name == "help" {
                eprintln!("{usage}");
                std::process::exit(0);
            }
            if !known.contains(&name) {
                bail!("unknown option `--{name}`\n\n{usage}");
            }
            let value = args
                .next()
                .with_context(|| format!("`--{name}` needs a value"))?;
            map.insert(name.to_owned(), value);
        }
        Ok(Self(map))
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as a number, or `default`.
    pub fn number(&self, name: &str, default: u64) -> anyhow::Result<u64> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .with_context(|| format!("`--{name} {v}` is not a number"))
        })
    }

    /// A client from `--kubeconfig` and `--context`, else from the usual places (`$KUBECONFIG`, ...).
    pub async fn client(&self) -> anyhow::Result<Client> {
        match self.get("kubeconfig") {
            Some(path) => {
                crate::client_from_kubeconfig(&PathBuf::from(path), self.get("context")).await
            }
            None => Ok(Client::try_default().await?),
        }
    }
}
