//! Capability grants: which hosts a plugin may reach and which secrets it may read.
//!
//! Pure decisions, no I/O. Deny by default: a plugin reaches nothing until the operator grants
//! it by name. A plugin's own `url` setting grants nothing.

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

/// One granted network destination: a host (lowercase) and the port it may be reached on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostGrant {
    host: String,
    /// `None`: the scheme's default port only (80 for http, 443 for https).
    port: Option<u16>,
}

impl HostGrant {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty host grant".into());
        }
        if text.contains("://") || text.contains('/') {
            return Err(format!(
                "host grant `{text}` must be a host or host:port, not a URL (e.g. `prometheus.example:9090`)"
            ));
        }
        // Let the URL parser do the host syntax (IDNA, IPv6 brackets, percent-decoding).
        let url = Url::parse(&format!("http://{text}/"))
            .map_err(|e| format!("host grant `{text}` is not a valid host[:port]: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "host grant `{text}` must not carry user information"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("host grant `{text}` has no host"))?
            .to_ascii_lowercase();
        let explicit_port = text.rsplit_once(':').is_some_and(|(head, port)| {
            !head.ends_with(':') && port.parse::<u16>().is_ok() && !port.contains(']')
        });
        // `Url` drops a port equal to the scheme default (http:80), so read it back from the text.
        let port = if explicit_port {
            Some(url.port().unwrap_or(80))
        } else {
            None
        };
        Ok(HostGrant { host, port })
    }

    fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        self.host == host && self.port.unwrap_or(default_port) == port
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// What a plugin is allowed to reach and read.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    hosts: Vec<HostGrant>,
    /// Granted secret names and their values (read from the runner's environment at load time).
    secrets: BTreeMap<String, Option<String>>,
}

impl Grants {
    /// No hosts and no secrets.
    pub fn none() -> Self {
        Grants::default()
    }

    /// Grants each of `hosts` (see [`HostGrant::parse`]).
    pub fn with_hosts<S: AsRef<str>>(mut self, hosts: &[S]) -> Result<Self, String> {
        for host in hosts {
            self.hosts.push(HostGrant::parse(host.as_ref())?);
        }
        Ok(self)
    }

    /// Grants secret `name`, whose value is the runner's environment variable `name`
    /// (absent when unset).
    #[must_use]
    pub fn with_secret(mut self, name: &str, value: Option<String>) -> Self {
        self.secrets.insert(name.to_owned(), value);
        self
    }

    /// The granted hosts.
    pub fn hosts(&self) -> &[HostGrant] {
        &self.hosts
    }

    /// The value of a granted secret; `None` when not granted or not set.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).and_then(|v| v.as_deref())
    }

    /// Every granted secret's `(name, value)` that is set, for redaction.
    pub fn secret_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.secrets
            .iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (name.as_str(), v)))
    }

    /// Decides whether a request to `url` may leave the sandbox.
    pub fn check_url(&self, url: &Url) -> Result<(), Denial> {
        let scheme = url.scheme();
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            other => return Err(Denial::Scheme(other.to_owned())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Denial::UserInfo);
        }
        let host = url.host_str().ok_or(Denial::NoHost)?.to_ascii_lowercase();
        let port = url.port().unwrap_or(default_port);
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && is_metadata(ip)
        {
            return Err(Denial::Metadata(ip));
        }
        if self
            .hosts
            .iter()
            .any(|g| g.allows(&host, port, default_port))
        {
            Ok(())
        } else {
            Err(Denial::HostNotGranted {
                authority: if port == default_port {
                    host
                } else {
                    format!("{host}:{port}")
                },
            })
        }
    }
}

/// The cloud instance-metadata addresses (`169.254.169.254` on every major cloud,
/// `fd00:ec2::254` for IPv6 on AWS) and the rest of the link-local range: never reachable by a plugin,
/// granted or not. Credentials of the machine live there. An IPv4 address written inside an IPv6
/// one ([`embedded_ipv4`]: mapped, compatible, NAT64, 6to4, Teredo) is judged as that IPv4 address.
#[must_use]
pub fn is_metadata(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || embedded_ipv4(v6).is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// The IPv4 address an IPv6 address carries, in every form that reaches it through a
/// translator or a tunnel: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated, but still routed by some stacks), NAT64 `64:ff9b::a.b.c.d` and the local-use
/// NAT64 prefix `64:ff9b:1::/48` (RFC 6052, 8215: the address sits in the last 32 bits for a
/// /96 prefix), 6to4 `2002:aabb:ccdd::/48` and Teredo `2001:0::/32` (its client address,
/// inverted, in the last 32 bits).
#[must_use]
pub fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let last32 = || std::net::Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // `::` and `::1` are IPv6's own unspecified and loopback addresses, judged as such.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => {
            Some(last32())
        }
        [0x2002, hi, lo, ..] => Some(std::net::Ipv4Addr::from(
            (u32::from(hi) << 16) | u32::from(lo),
        )),
        [0x2001, 0, ..] => Some(std::net::Ipv4Addr::from(!u32::from(last32()))),
        _ => None,
    }
}

/// Whether a granted host *name* may connect to `ip`: not to loopback, link-local (metadata),
/// unspecified, multicast or broadcast addresses, nor to an IPv6 address that carries one of
/// them ([`embedded_ipv4`]). Private ranges (10/8, 172.16/12, 192.168/16, `fc00::/7`) stay
/// reachable: in-cluster services such as Prometheus live there. An IP address granted
/// explicitly (`127.0.0.1:9090`) is reachable as granted; only names are filtered, so a DNS
/// answer cannot turn a granted name into the runner's own loopback.
#[must_use]
pub fn name_may_reach(ip: std::net::IpAddr) -> bool {
    let reachable = |ip: std::net::IpAddr| {
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        !(ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || is_metadata(ip)
            || broadcast)
    };
    match ip {
        std::net::IpAddr::V6(v6) => {
            reachable(ip) && embedded_ipv4(v6).is_none_or(|v4| reachable(std::net::IpAddr::V4(v4)))
        }
        v4 @ std::net::IpAddr::V4(_) => reachable(v4),
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// Only `http` and `https` are served.
    #[error("scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    /// `user:password@` in a URL is refused (use a granted secret in a header instead).
    #[error("credentials in the URL are not allowed; send them in a header from a granted secret")]
    UserInfo,
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The cloud metadata address (or another link-local one): never reachable.
    #[error(
        "`{0}` is a link-local address (the cloud metadata service lives there); plugins may never reach it"
    )]
    Metadata(std::net::IpAddr),
    /// The host and port are not granted to this plugin.
    #[error(
        "host `{authority}` is not granted to this plugin: grant it with `allow_hosts = [\"{authority}\"]` in its [plugins.NAME] table, or `--allow-host {authority}` on `tagship plugin run` (a host without a port is its scheme's default port)"
    )]
    HostNotGranted {
        /// `host` or `host:port` as requested.
        authority: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(hosts: &[&str]) -> Grants {
        Grants::none().with_hosts(hosts).unwrap()
    }

    fn check(g: &Grants, url: &str) -> Result<(), Denial> {
        g.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn nothing_is_reachable_without_a_grant() {
        assert!(matches!(
            check(&Grants::none(), "http://prometheus:9090/api"),
            Err(Denial::HostNotGranted { .. })
        ));
    }

    #[test]
    fn a_host_with_a_port_allows_exactly_that_port() {
        let g = grants(&["prometheus.example:9090"]);
        assert_eq!(check(&g, "http://prometheus.example:9090/x"), Ok(()));
        assert_eq!(check(&g, "https://prometheus.example:9090/x"), Ok(()));
        assert_eq!(
            check(&g, "http://prometheus.example:9091/x"),
            Err(Denial::HostNotGranted {
                authority: "prometheus.example:9091".into()
            })
        );
        assert!(check(&g, "http://prometheus.example/x").is_err());
    }

    #[test]
    fn a_bare_host_allows_only_the_schemes_default_port() {
        let g = grants(&["hooks.slack.com"]);
        assert_eq!(check(&g, "https://hooks.slack.com/services/x"), Ok(()));
        assert_eq!(check(&g, "http://hooks.slack.com/"), Ok(()));
        assert!(check(&g, "https://hooks.slack.com:8443/").is_err());
    }

    #[test]
    fn an_explicit_default_port_in_the_grant_is_kept() {
        let g = grants(&["example.com:80"]);
        assert_eq!(check(&g, "http://example.com/"), Ok(()));
        assert!(check(&g, "https://example.com/").is_err());
    }

    #[test]
    fn hosts_compare_case_insensitively_and_suffixes_do_not_match() {
        let g = grants(&["Example.COM"]);
        assert_eq!(check(&g, "https://example.com/"), Ok(()));
        assert!(check(&g, "https://evil-example.com/").is_err());
        assert!(check(&g, "https://example.com.evil.net/").is_err());
        assert!(check(&g, "https://sub.example.com/").is_err());
    }

    #[test]
    fn ip_addresses_are_granted_like_names() {
        let g = grants(&["127.0.0.1:8080", "[::1]:9090"]);
        assert_eq!(check(&g, "http://127.0.0.1:8080/"), Ok(()));
        assert_eq!(check(&g, "http://[::1]:9090/"), Ok(()));
        assert!(check(&g, "http://127.0.0.2:8080/").is_err());
    }

    #[test]
    fn other_schemes_and_credentials_are_refused() {
        let g = grants(&["example.com"]);
        assert_eq!(
            check(&g, "ftp://example.com/"),
            Err(Denial::Scheme("ftp".into()))
        );
        assert_eq!(
            check(&g, "file:///etc/passwd"),
            Err(Denial::Scheme("file".into()))
        );
        assert_eq!(
            check(&g, "https://user:pw@example.com/"),
            Err(Denial::UserInfo)
        );
    }

    #[test]
    fn the_metadata_address_is_refused_even_when_granted() {
        let g = grants(&["169.254.169.254", "[fd00:ec2::254]"]);
        for url in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[fd00:ec2::254]/latest/meta-data/",
        ] {
            assert!(matches!(check(&g, url), Err(Denial::Metadata(_))), "{url}");
        }
    }

    #[test]
    fn names_may_reach_private_but_not_loopback_or_link_local_addresses() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for allowed in [
            "10.0.0.5",
            "192.168.1.2",
            "172.16.0.1",
            "93.184.216.34",
            "fd12::1",
            "64:ff9b::a00:5",
            "2002:a00:5::1",
            "2606:4700::1111",
        ] {
            assert!(name_may_reach(ip(allowed)), "{allowed}");
        }
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "169.254.10.10",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            // IPv4 inside IPv6: compatible, NAT64 (well-known and local-use), 6to4, Teredo.
            "::127.0.0.1",
            "::169.254.169.254",
            "::0.0.0.0",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(!name_may_reach(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn the_metadata_address_is_refused_in_every_ipv6_spelling() {
        let g = grants(&[
            "[64:ff9b::a9fe:a9fe]",
            "[::169.254.169.254]",
            "[2002:a9fe:a9fe::1]",
        ]);
        for url in [
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "http://[::169.254.169.254]/latest/meta-data/",
            "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
        ] {
            assert!(matches!(check(&g, url), Err(Denial::Metadata(_))), "{url}");
        }
    }

    #[test]
    fn a_url_is_not_a_valid_grant() {
        let err = HostGrant::parse("https://example.com").unwrap_err();
        assert!(err.contains("not a URL"), "{err}");
        assert!(HostGrant::parse("").is_err());
        assert!(HostGrant::parse("example.com:99999").is_err());
    }

    #[test]
    fn secrets_are_read_only_by_granted_name() {
        let g = Grants::none()
            .with_secret("SLACK_WEBHOOK_URL", Some("https://hooks/xyz".into()))
            .with_secret("UNSET", None);
        assert_eq!(g.secret("SLACK_WEBHOOK_URL"), Some("https://hooks/xyz"));
        assert_eq!(g.secret("UNSET"), None);
        assert_eq!(g.secret("HOME"), None);
        assert_eq!(g.secret_values().count(), 1);
    }
}
