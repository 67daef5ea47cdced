//! TLS test servers: a throwaway PKI ([`TestPki`], made with rcgen), a TLS-only Redis that
//! takes a client certificate when one is offered, a second one that demands it (mutual TLS),
//! a TLS-only Redis Cluster of 3 masters, and a PostgreSQL server with `ssl = on` that takes
//! TCP connections over TLS only ([`TlsServers`], the `tls` service of the launcher).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis::{ClientTlsConfig, RedisResult, TlsCertificates};
use tempfile::TempDir;

use crate::{ClusterOptions, Postgres, RedisCluster, RedisServer};

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub(crate) struct ServerCertificate {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A throwaway PKI in a directory: a CA (`ca.pem`), a server certificate it signed for
/// `127.0.0.1` and `localhost` (`server.pem`, `server.key`; also good as a client certificate,
/// which cluster nodes need on each other's bus), a client certificate it signed
/// (`client.pem`, `client.key`), and an unrelated CA (`other-ca.pem`) for "wrong CA" tests.
/// Keys are ECDSA P-256, PKCS#8.
///
/// ```no_run
/// let dir = tempfile::tempdir()?;
/// let pki = test_support::TestPki::generate(dir.path())?;
/// assert!(pki.ca_file().ends_with("ca.pem"));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct TestPki {
    dir: PathBuf,
    server: ServerCertificate,
}

impl TestPki {
    /// Generates the certificates and writes them into `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let (ca_cert, ca) = certificate_authority("test-support CA")?;
        let (other_ca_cert, _) = certificate_authority("test-support unrelated CA")?;
        // Cluster nodes present their server certificate as clients of each other's bus.
        let server = leaf(
            &ca,
            "127.0.0.1",
            &["127.0.0.1", "localhost"],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        let client = leaf(
            &ca,
            "test-support client",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        let files = [
            ("ca.pem", ca_cert.as_str()),
            ("other-ca.pem", other_ca_cert.as_str()),
            ("server.pem", server.cert_pem.as_str()),
            ("server.key", server.key_pem.as_str()),
            ("client.pem", client.cert_pem.as_str()),
            ("client.key", client.key_pem.as_str()),
        ];
        for (name, pem) in files {
            let path = dir.join(name);
            fs::write(&path, pem).with_context(|| format!("could not write {}", path.display()))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            server,
        })
    }

    /// The CA that signed the server and client certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing here: trusting it alone, no server here is trusted.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// The client certificate (for mutual TLS).
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client certificate's private key.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    fn server_cert_file(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    fn server_key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

/// A self-signed CA: its PEM certificate and the issuer that signs with it.
fn certificate_authority(name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A certificate signed by `ca` for `names` (IP addresses or DNS names).
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    common_name: &str,
    names: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<ServerCertificate> {
    let key = KeyPair::generate()?;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    let cert = params.signed_by(&key, ca)?;
    Ok(ServerCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// How a TLS-only `redis-server` is set up: its certificate, the CA it checks client
/// certificates against, and whether it demands one.
#[derive(Clone)]
pub(crate) struct NodeTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    require_client_certificate: bool,
}

impl NodeTls {
    fn new(pki: &TestPki, require_client_certificate: bool) -> Self {
        Self {
            ca: pki.ca_file(),
            cert: pki.server_cert_file(),
            key: pki.server_key_file(),
            client_cert: pki.client_cert_file(),
            client_key: pki.client_key_file(),
            require_client_certificate,
        }
    }

    /// The `redis-server` arguments besides `--port 0 --tls-port <port>`.
    pub(crate) fn server_args(&self) -> Vec<OsString> {
        let auth_clients = if self.require_client_certificate {
            "yes"
        } else {
            "optional"
        };
        vec![
            "--tls-cert-file".into(),
            self.cert.clone().into(),
            "--tls-key-file".into(),
            self.key.clone().into(),
            "--tls-ca-cert-file".into(),
            self.ca.clone().into(),
            "--tls-auth-clients".into(),
            auth_clients.into(),
        ]
    }

    /// The `redis-cli` arguments to reach a node: TLS, trusting the CA, with the client
    /// certificate.
    pub(crate) fn cli_args(&self) -> Vec<OsString> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca.clone().into(),
            "--cert".into(),
            self.client_cert.clone().into(),
            "--key".into(),
            self.client_key.clone().into(),
        ]
    }

    /// A client for the fixture's own commands: trusts the CA, presents the client
    /// certificate.
    pub(crate) fn client(&self, port: u16) -> RedisResult<redis::Client> {
        // Err: one is installed already, as wanted.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let read = |path: &Path| fs::read(path).map_err(redis::RedisError::from);
        redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}"),
            TlsCertificates {
                client_tls: Some(ClientTlsConfig {
                    client_cert: read(&self.client_cert)?,
                    client_key: read(&self.client_key)?,
                }),
                root_cert: Some(read(&self.ca)?),
            },
        )
    }
}

/// The servers of the `tls` service, all on loopback with certificates of one [`TestPki`]:
/// a TLS-only Redis that takes a client certificate when offered, a TLS-only Redis that
/// demands one, a TLS-only Redis Cluster of 3 masters (no replicas), and a Postgres that
/// takes TCP connections over TLS only. Dropping it stops
/// them and removes the certificates.
pub struct TlsServers {
    redis: RedisServer,
    cluster: RedisCluster,
    redis_mtls: RedisServer,
    postgres: Postgres,
    pki: TestPki,
    /// Removed after the servers are gone (fields drop in order).
    _dir: TempDir,
}

impl TlsServers {
    /// Generates the PKI and starts the three servers.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("test-support-tls-")
            .tempdir()
            .context("could not create a temporary directory for the test certificates")?;
        let pki = TestPki::generate(dir.path())?;
        let redis = RedisServer::start_tls(NodeTls::new(&pki, false))?;
        let redis_mtls = RedisServer::start_tls(NodeTls::new(&pki, true))?;
        let cluster =
            RedisCluster::start_tls(ClusterOptions::MASTERS_ONLY, NodeTls::new(&pki, false))?;
        let postgres = Postgres::start_ssl(pki.server.clone())?;
        Ok(Self {
            redis,
            cluster,
            redis_mtls,
            postgres,
            pki,
            _dir: dir,
        })
    }

    /// The variables that announce the servers to the tests (see [`crate::Service::Tls`]).
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let path = |p: PathBuf| p.display().to_string();
        let ca = path(self.pki.ca_file());
        vec![
            ("TEST_REDIS_TLS_URL", self.redis.url()),
            ("TEST_REDIS_MTLS_URL", self.redis_mtls.url()),
            ("TEST_REDIS_TLS_CLUSTER_URLS", self.cluster.urls().join(",")),
            (
                "TEST_DATABASE_TLS_URL",
                format!(
                    "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
                    self.postgres.port()
                ),
            ),
            ("TEST_TLS_CA_FILE", ca),
            ("TEST_TLS_OTHER_CA_FILE", path(self.pki.other_ca_file())),
            (
                "TEST_TLS_CLIENT_CERT_FILE",
                path(self.pki.client_cert_file()),
            ),
            ("TEST_TLS_CLIENT_KEY_FILE", path(self.pki.client_key_file())),
        ]
    }
}
