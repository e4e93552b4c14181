//! The API server address that scanner pods may reach.

use std::fmt;
use std::net::IpAddr;

use crate::NetpolError;

/// An API server endpoint as a NetworkPolicy `ipBlock` plus TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiEndpoint {
    ip: IpAddr,
    prefix: u8,
    port: u16,
}

impl ApiEndpoint {
    /// Parses `IP[/PREFIX]:PORT`, with IPv6 addresses in brackets (`[fd00::1]/128:6443`).
    /// A missing prefix means the single address. The address must be the network address of
    /// its prefix (as Kubernetes requires of `ipBlock.cidr`), and port 0 is refused.
    pub fn parse(input: &str) -> Result<Self, NetpolError> {
        let err = |reason: &str| NetpolError::InvalidEndpoint {
            value: input.to_string(),
            reason: reason.to_string(),
        };
        let (addr, port) = input.rsplit_once(':').ok_or_else(|| err("no :PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err("port is not a number 1-65535"))?;
        if port == 0 {
            return Err(err("port 0 is not a port"));
        }
        let (ip, prefix) = match addr.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (addr, None),
        };
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        let ip: IpAddr = ip.parse().map_err(|_| err("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| err("bad prefix length"))?,
        };
        if prefix == 0 {
            return Err(err("a /0 block would allow egress anywhere"));
        }
        let e = Self { ip, prefix, port };
        if e.network() != ip {
            return Err(err("address has host bits set for its prefix"));
        }
        Ok(e)
    }

    fn network(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// The `ipBlock.cidr` value.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.ip, self.prefix)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(_) => write!(f, "{}:{}", self.cidr(), self.port),
            IpAddr::V6(a) => write!(f, "[{a}]/{}:{}", self.prefix, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let e = ApiEndpoint::parse("10.96.0.1:443").unwrap();
        assert_eq!((e.cidr().as_str(), e.port()), ("10.96.0.1/32", 443));
        assert_eq!(
            ApiEndpoint::parse("10.0.0.0/24:6443").unwrap().cidr(),
            "10.0.0.0/24"
        );
        let v6 = ApiEndpoint::parse("[fd00::1]:6443").unwrap();
        assert_eq!(v6.cidr(), "fd00::1/128");
        assert_eq!(ApiEndpoint::parse(&v6.to_string()), Ok(v6));
        for bad in [
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "host:443",
            "10.0.0.1/33:443",
            "10.0.0.1/24:443",
            "0.0.0.0/0:443",
            "[fd00::1]/129:1",
        ] {
            assert!(ApiEndpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
