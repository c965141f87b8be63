//! The URLs the updater fetches: absolute `http://` and `https://` URLs with a host, and the
//! references that lead to them (a redirect's Location, a bundle URL relative to its release
//! index), resolved as RFC 3986 section 5 says. Small and strict on purpose: a general URL library
//! with Unicode host names (IDNA) was a tenth of the updater's size. Host names are ASCII (an
//! internationalised name is written in its `xn--` form); what HTTP cannot carry in a path or
//! query (spaces, controls, non-ASCII) is percent-encoded; a fragment is dropped, as it never
//! reaches the server.
use std::fmt;
use std::net::Ipv6Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The whole URL, as it is sent.
    text: String,
    scheme: &'static str,
    /// `[userinfo@]host[:port]`, the host in lower case.
    authority: String,
    /// Starts with `/`; dot segments removed.
    path: String,
    query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("only http:// and https:// URLs are fetched")]
    Scheme,
    #[error("not an absolute URL (scheme://host/path)")]
    NotAbsolute,
    #[error("empty host")]
    NoHost,
    #[error("host '{0}' is not a DNS name or an IP address (write an international name in its xn-- form)")]
    BadHost(String),
    #[error("port '{0}' is not a number up to 65535")]
    BadPort(String),
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
        let (scheme, rest) = split_scheme(text).ok_or(UrlError::NotAbsolute)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(UrlError::Scheme),
        };
        let rest = rest.strip_prefix("//").ok_or(UrlError::NotAbsolute)?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = check_authority(&rest[..authority_end])?;
        let (path, query) = split_reference(&rest[authority_end..]);
        Ok(HttpUrl::new(
            scheme,
            authority,
            remove_dot_segments(&encode(if path.is_empty() { "/" } else { path }, PATH)),
            query.map(|q| encode(q, QUERY)),
        ))
    }

    /// Resolves `reference` against this URL (RFC 3986 section 5.2.2): an absolute URL, one
    /// without a scheme (`//host/x`), an absolute path, a relative path or only a query.
    pub fn join(&self, reference: &str) -> Result<HttpUrl, UrlError> {
        let reference =
            reference.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
        if split_scheme(reference).is_some() {
            return HttpUrl::parse(reference);
        }
        if reference.starts_with("//") {
            return HttpUrl::parse(&format!("{}:{reference}", self.scheme));
        }
        let (path, query) = split_reference(reference);
        let path = encode(path, PATH);
        let (path, query) = match (path.as_str(), query) {
            ("", None) => (self.path.clone(), self.query.clone()),
            ("", Some(q)) => (self.path.clone(), Some(q.to_string())),
            (p, q) if p.starts_with('/') => (remove_dot_segments(p), q.map(str::to_string)),
            (p, q) => {
                let folder = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
                (
                    remove_dot_segments(&format!("{folder}{p}")),
                    q.map(str::to_string),
                )
            }
        };
        Ok(HttpUrl::new(
            self.scheme,
            self.authority.clone(),
            path,
            query.map(|q| encode(&q, QUERY)),
        ))
    }

    fn new(
        scheme: &'static str,
        authority: String,
        path: String,
        query: Option<String>,
    ) -> HttpUrl {
        let mut text = format!("{scheme}://{authority}{path}");
        if let Some(query) = &query {
            text.push('?');
            text.push_str(query);
        }
        HttpUrl {
            text,
            scheme,
            authority,
            path,
            query,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<HttpUrl> for String {
    fn from(url: HttpUrl) -> String {
        url.text
    }
}

/// `scheme` and what follows its colon, when `text` starts with a scheme.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// A reference's path and query; the fragment is dropped.
fn split_reference(text: &str) -> (&str, Option<&str>) {
    let text = text.split('#').next().unwrap_or_default();
    match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    }
}

/// Checks `[userinfo@]host[:port]`; returns it with the host in lower case.
fn check_authority(authority: &str) -> Result<String, UrlError> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, authority),
    };
    let (host, port) = if let Some(literal) = host_port.strip_prefix('[') {
        let (address, after) = literal
            .split_once(']')
            .ok_or_else(|| UrlError::BadHost(host_port.to_string()))?;
        address
            .parse::<Ipv6Addr>()
            .map_err(|_| UrlError::BadHost(host_port.to_string()))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| UrlError::BadHost(host_port.to_string()))?,
            ),
        };
        (&host_port[..address.len() + 2], port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let dns_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !host.starts_with('[') && !dns_name {
        return Err(UrlError::BadHost(host.to_string()));
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UrlError::BadPort(port.to_string()));
        }
        port.parse::<u16>()
            .map_err(|_| UrlError::BadPort(port.to_string()))?;
    }
    let mut out = String::with_capacity(authority.len());
    if let Some(userinfo) = userinfo {
        out.push_str(&encode(userinfo, USERINFO));
        out.push('@');
    }
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        out.push(':');
        out.push_str(port);
    }
    Ok(out)
}

/// Bytes that HTTP cannot carry as they are in a path, a query or the userinfo (besides controls,
/// space and non-ASCII, which are always encoded).
const PATH: &[u8] = b"\"<>\\^`{|}";
const QUERY: &[u8] = b"\"<>\\^`{|}";
const USERINFO: &[u8] = b"\"<>\\^`{|}/?#[]";

/// Percent-encodes what must be; an existing `%XX` stays as it is.
fn encode(text: &str, also: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b <= b' ' || b >= 0x7f || also.contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// RFC 3986 section 5.2.4: `.` and `..` segments resolved, never above the root.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." | "%2e" | "%2E" => trailing_slash = last,
            ".." | ".%2e" | ".%2E" | "%2e." | "%2E." | "%2e%2e" | "%2E%2E" => {
                segments.pop();
                trailing_slash = last;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> String {
        HttpUrl::parse(text).unwrap().to_string()
    }

    #[test]
    fn absolute_urls_are_kept_and_normalised() {
        assert_eq!(
            url("https://updates.example/x.toml"),
            "https://updates.example/x.toml"
        );
        assert_eq!(
            url("HTTP://Updates.Example:8080"),
            "http://updates.example:8080/"
        );
        assert_eq!(
            url("http://127.0.0.1:8/x?a=1#frag"),
            "http://127.0.0.1:8/x?a=1"
        );
        assert_eq!(url("http://[::1]:8080/a/./b/../c"), "http://[::1]:8080/a/c");
        assert_eq!(url("http://u:p@h/a b/é"), "http://u:p@h/a%20b/%C3%A9");
        assert_eq!(url(" http://h/x\n"), "http://h/x");
        assert_eq!(url("http://h/../../x"), "http://h/x");
    }

    #[test]
    fn what_is_not_an_http_url_with_a_host_is_refused() {
        for (bad, why) in [
            ("file:///etc/passwd", UrlError::Scheme),
            ("data:text/plain,x", UrlError::Scheme),
            ("ftp://host/x", UrlError::Scheme),
            ("http://", UrlError::NoHost),
            ("http://:80/x", UrlError::NoHost),
            ("http:host/x", UrlError::NotAbsolute),
            ("/relative", UrlError::NotAbsolute),
            (
                "http://bücher.example/",
                UrlError::BadHost("bücher.example".into()),
            ),
            ("http://a b/", UrlError::BadHost("a b".into())),
            ("http://[zz]/", UrlError::BadHost("[zz]".into())),
            ("http://h:99999/", UrlError::BadPort("99999".into())),
            ("http://h:8x/", UrlError::BadPort("8x".into())),
        ] {
            assert_eq!(HttpUrl::parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn references_resolve_as_rfc_3986_section_5_4_says() {
        // The normal examples of RFC 3986 section 5.4.1 that an HTTP URL can have.
        let base = HttpUrl::parse("http://a/b/c/d;p?q").unwrap();
        for (reference, expected) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("https://other/x", "https://other/x"),
        ] {
            assert_eq!(
                base.join(reference).unwrap().to_string(),
                expected,
                "{reference}"
            );
        }
        assert_eq!(base.join("file:///etc/passwd"), Err(UrlError::Scheme));
        assert_eq!(base.join("//"), Err(UrlError::NoHost));
    }
}
