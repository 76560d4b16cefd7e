//! `dns_lookup`: what a resolver answers for a name, per record type, and
//! how long it took (hickory-resolver). The system resolver (or
//! `[network] resolver`) by default; a given `server` must pass the
//! target policy like any other probe target.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::RecordType as HRecordType;
use hickory_resolver::{Name, ResolveErrorKind};
use serde::{Deserialize, Serialize};

use super::{Prober, ms};
use crate::host::net::target::Host;
use crate::mcp::ToolError;

/// Most record types per lookup (every supported type once).
pub const MAX_RECORD_TYPES: usize = 9;
/// Most records reported per type.
pub const MAX_RECORDS_PER_TYPE: usize = 100;
/// Longest record text reported (a TXT record longer than this is cut).
pub const MAX_RECORD_TEXT: usize = 2048;

/// A record type `dns_lookup` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RecordType {
    A,
    AAAA,
    CNAME,
    MX,
    TXT,
    NS,
    SRV,
    PTR,
    CAA,
}

impl RecordType {
    fn hickory(self) -> HRecordType {
        match self {
            RecordType::A => HRecordType::A,
            RecordType::AAAA => HRecordType::AAAA,
            RecordType::CNAME => HRecordType::CNAME,
            RecordType::MX => HRecordType::MX,
            RecordType::TXT => HRecordType::TXT,
            RecordType::NS => HRecordType::NS,
            RecordType::SRV => HRecordType::SRV,
            RecordType::PTR => HRecordType::PTR,
            RecordType::CAA => HRecordType::CAA,
        }
    }
}

/// One record of an answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Record {
    /// The owner name (a CNAME chain shows each name).
    pub name: String,
    /// `A`, `CNAME` … (the answer may hold a CNAME for an A query).
    pub record_type: String,
    pub ttl: u32,
    /// Presentation form: `192.0.2.1`, `10 mail.example.com.`, `"text"`.
    pub data: String,
}

/// The answer for one record type.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Answer {
    pub record_type: RecordType,
    pub records: Vec<Record>,
    pub truncated: bool,
    /// `no_records`, `nxdomain`, `timeout`, `refused`, `error`, or null.
    pub error: Option<String>,
    pub message: Option<String>,
    pub ms: f64,
}

/// What `dns_lookup` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DnsLookupOutput {
    /// The name asked (for PTR: the reverse name of the address).
    pub name: String,
    /// `system`, or the server asked (`IP:port`).
    pub server: String,
    pub answers: Vec<Answer>,
    pub total_ms: f64,
}

/// One `dns_lookup`.
pub struct DnsLookup {
    pub name: Host,
    pub types: Vec<RecordType>,
    pub server: Option<SocketAddr>,
    pub timeout: Duration,
}

impl Prober {
    pub async fn dns_lookup(&self, q: DnsLookup) -> Result<DnsLookupOutput, ToolError> {
        if let Some(server) = q.server {
            self.policy.check_ip(server.ip()).map_err(|r| r.to_error("the DNS server"))?;
        }
        let name: Name = match &q.name {
            Host::Ip(ip) => Name::from(*ip),
            Host::Name(n) => {
                self.policy.check_name(n).map_err(|r| r.to_error("the name looked up"))?;
                Name::from_ascii(format!("{n}.")).map_err(|e| {
                    ToolError::invalid_input(format!("{n:?} is not a DNS name: {e}"), "give a name such as example.com")
                })?
            }
        };
        let resolver = self.resolver(q.server, q.timeout)?;
        let start = Instant::now();
        let mut answers = Vec::new();
        for rt in &q.types {
            let t0 = Instant::now();
            let res = tokio::time::timeout(q.timeout, resolver.lookup(name.clone(), rt.hickory())).await;
            let mut a =
                Answer { record_type: *rt, records: vec![], truncated: false, error: None, message: None, ms: 0.0 };
            match res {
                Err(_) => {
                    a.error = Some("timeout".into());
                    a.message = Some(format!("no answer within {} ms", q.timeout.as_millis()));
                }
                Ok(Err(e)) => {
                    let kind = match e.kind() {
                        ResolveErrorKind::Proto(p) if p.is_no_records_found() => match p.kind() {
                            hickory_resolver::proto::ProtoErrorKind::NoRecordsFound { response_code, .. }
                                if *response_code == hickory_resolver::proto::op::ResponseCode::NXDomain =>
                            {
                                "nxdomain"
                            }
                            _ => "no_records",
                        },
                        ResolveErrorKind::Proto(p)
                            if p.is_busy() || matches!(p.kind(), hickory_resolver::proto::ProtoErrorKind::Timeout) =>
                        {
                            "timeout"
                        }
                        _ => "error",
                    };
                    a.error = Some(kind.into());
                    a.message = Some(e.to_string());
                }
                Ok(Ok(lookup)) => {
                    let all = lookup.records();
                    a.truncated = all.len() > MAX_RECORDS_PER_TYPE;
                    a.records = all
                        .iter()
                        .take(MAX_RECORDS_PER_TYPE)
                        .map(|r| Record {
                            name: r.name().to_string(),
                            record_type: r.record_type().to_string(),
                            ttl: r.ttl(),
                            data: r.data().to_string().chars().take(MAX_RECORD_TEXT).collect(),
                        })
                        .collect();
                }
            }
            a.ms = ms(t0.elapsed());
            answers.push(a);
        }
        Ok(DnsLookupOutput {
            name: name.to_string(),
            server: q.server.or(self.resolver).map(|s| s.to_string()).unwrap_or_else(|| "system".into()),
            answers,
            total_ms: ms(start.elapsed()),
        })
    }
}
