//! Where load may go. A load generator pointed at the wrong host is an attack, so the base URL
//! must be a loopback address or an explicit `https://` URL (a deployed stage); anything else
//! needs `--allow-remote`.

use std::net::IpAddr;

/// A checked base URL: scheme and authority, plus an optional path prefix (an API Gateway stage),
/// never ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: String,
    https: bool,
    loopback: bool,
}

impl BaseUrl {
    /// Parses and checks `raw` against the policy above.
    pub fn parse(raw: &str, allow_remote: bool) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = raw.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = raw.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("base URL `{raw}` must start with http:// or https://"));
        };
        if raw.contains(['?', '#']) || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("base URL `{raw}` must not contain a query, a fragment or whitespace"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("base URL `{raw}` needs a host (and no user info)"));
        }
        let host = host_of(authority);
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback && !https && !allow_remote {
            return Err(format!(
                "refusing to send load to `{raw}`: only loopback addresses (127.0.0.1, ::1, localhost) or an \
                 explicit https:// URL may be targeted; pass --allow-remote if this host is really yours"
            ));
        }
        Ok(Self { url: raw.trim_end_matches('/').to_owned(), https, loopback })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// `{base}/sales/{sale}`
    pub fn sale_url(&self, sale: &str) -> String {
        format!("{}/sales/{sale}", self.url)
    }

    /// `{base}/sales/{sale}/purchases`
    pub fn purchases_url(&self, sale: &str) -> String {
        format!("{}/sales/{sale}/purchases", self.url)
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(host, _port)| host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_https_are_accepted() {
        for ok in [
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/",
            "http://localhost:9000",
            "http://[::1]:9000",
            "http://127.0.0.7",
            "https://abc.execute-api.eu-west-1.amazonaws.com/test",
            "https://127.0.0.1:9443",
        ] {
            assert!(BaseUrl::parse(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn plain_http_to_another_host_is_refused_without_allow_remote() {
        for bad in [
            "http://10.0.0.1:9000",
            "http://example.com",
            "http://127.0.0.1.example.com:9000",
            "http://169.254.169.254/latest",
            "http://[2001:db8::1]:80",
        ] {
            let err = BaseUrl::parse(bad, false).unwrap_err();
            assert!(err.contains("--allow-remote"), "{bad}: {err}");
            assert!(BaseUrl::parse(bad, true).is_ok(), "{bad} with --allow-remote");
        }
    }

    #[test]
    fn malformed_urls_are_refused_even_with_allow_remote() {
        for bad in [
            "127.0.0.1:9000",
            "ftp://127.0.0.1",
            "http://",
            "http://user@127.0.0.1",
            "http://127.0.0.1/?x=1",
            "http://127.0.0.1 /",
        ] {
            assert!(BaseUrl::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_join_without_double_slashes() {
        let base = BaseUrl::parse("https://api.example.com/stage/", false).unwrap();
        assert_eq!(base.purchases_url("s-1"), "https://api.example.com/stage/sales/s-1/purchases");
        assert_eq!(base.sale_url("s-1"), "https://api.example.com/stage/sales/s-1");
        assert!(base.is_https() && !base.is_loopback());
    }
}
