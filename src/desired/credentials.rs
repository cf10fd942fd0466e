//! The generated Secret: passwords and shared secrets created once by the
//! controller, plus the DSNs and their parts that the app reads.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta::{Component, Parent};
use super::{Child, Plan, database, names};
use crate::api::{DatabaseEngine, DatabaseSpec, WebClusterSpec};

/// Password of the application's database user.
pub const DB_PASSWORD: &str = "db-password";
/// Password of the database superuser (postgres / root).
pub const DB_SUPERUSER_PASSWORD: &str = "db-superuser-password";
/// Password of the replication user.
pub const DB_REPLICATION_PASSWORD: &str = "db-replication-password";
/// Prefix of the keys holding `spec.app.sharedSecrets` values.
const SHARED_PREFIX: &str = "shared.";

/// The generated Secret's key holding shared secret `name`.
pub fn shared_key(name: &str) -> String {
    format!("{SHARED_PREFIX}{name}")
}
/// Characters of generated values: safe unescaped in URLs, shell words, SQL and PHP strings.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Length of generated values (about 190 bits).
pub const GENERATED_LENGTH: usize = 32;

/// Which end of the database a DSN points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The primary.
    Write,
    /// The replicas.
    Read,
}

impl Endpoint {
    /// Both ends, write first.
    pub const ALL: [Endpoint; 2] = [Endpoint::Write, Endpoint::Read];

    /// Prefix of the Secret keys and environment variables of this endpoint.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Endpoint::Write => "write",
            Endpoint::Read => "read",
        }
    }
}

/// The parts of a DSN, each a key in the generated Secret ([`dsn_key`]) and a
/// `WEBCLUSTER_DB_<ENDPOINT>_<PART>` variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnPart {
    /// The whole DSN.
    Url,
    /// Host name.
    Host,
    /// Port.
    Port,
    /// Database name.
    Name,
    /// User.
    User,
    /// Password.
    Password,
}

impl DsnPart {
    /// Every part, in contract order.
    pub const ALL: [DsnPart; 6] =
        [DsnPart::Url, DsnPart::Host, DsnPart::Port, DsnPart::Name, DsnPart::User, DsnPart::Password];

    /// The part's name in Secret keys and variable names.
    pub fn name(self) -> &'static str {
        match self {
            DsnPart::Url => "url",
            DsnPart::Host => "host",
            DsnPart::Port => "port",
            DsnPart::Name => "name",
            DsnPart::User => "user",
            DsnPart::Password => "password",
        }
    }
}

/// One database the app reaches: the main one, or one of `databases` by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppDatabase<'a> {
    /// `databaseName` of a managed server, or the external write/read DSNs.
    Main,
    /// An entry of `managed.databases` or `external.databases`.
    Extra(&'a str),
}

impl AppDatabase<'_> {
    /// Prefix of its Secret keys: none for the main database, `db.<name>.` else.
    fn key_prefix(self) -> String {
        match self {
            AppDatabase::Main => String::new(),
            AppDatabase::Extra(name) => format!("db.{name}."),
        }
    }

    /// Prefix of its variables: `WEBCLUSTER_DB_`, or `WEBCLUSTER_DB_<NAME>_`.
    fn var_prefix(self) -> String {
        match self {
            AppDatabase::Main => "WEBCLUSTER_DB_".into(),
            AppDatabase::Extra(name) => format!("WEBCLUSTER_DB_{}_", name.to_uppercase()),
        }
    }
}

/// Every database of the spec the app reaches, the main one first. Names are
/// `[a-z_][a-z0-9_]*` and parts hold no `_`, so no two share a variable.
pub fn app_databases(db: &DatabaseSpec) -> Vec<AppDatabase<'_>> {
    let extras: Vec<&str> = match (&db.managed, &db.external) {
        (Some(managed), _) => managed.databases.iter().map(|d| d.name.as_str()).collect(),
        (None, Some(external)) => external.databases.iter().map(|d| d.name.as_str()).collect(),
        (None, None) => Vec::new(),
    };
    std::iter::once(AppDatabase::Main).chain(extras.into_iter().map(AppDatabase::Extra)).collect()
}

/// The generated Secret's key of one part of one endpoint's DSN of a database:
/// `<endpoint>-<part>` for the main one, `db.<name>.<endpoint>-<part>` else.
pub fn dsn_key(db: AppDatabase, endpoint: Endpoint, part: DsnPart) -> String {
    format!("{}{}-{}", db.key_prefix(), endpoint.key_prefix(), part.name())
}

/// The contract variable of one part: `WEBCLUSTER_DB_[<NAME>_]<ENDPOINT>_<PART>`.
pub fn dsn_var(db: AppDatabase, endpoint: Endpoint, part: DsnPart) -> String {
    format!("{}{}_{}", db.var_prefix(), endpoint.key_prefix(), part.name()).to_uppercase()
}

/// The generated key of an extra managed database's password: `db.<name>.password`.
pub fn extra_password_key(name: &str) -> String {
    format!("{}password", AppDatabase::Extra(name).key_prefix())
}

/// Keys whose values the controller generates once: database passwords (managed
/// database only, the extra databases' too) and the shared secrets.
pub fn generated_keys(spec: &WebClusterSpec) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(managed) = spec.database.as_ref().and_then(|db| db.managed.as_ref()) {
        keys.extend([DB_PASSWORD, DB_SUPERUSER_PASSWORD, DB_REPLICATION_PASSWORD].map(String::from));
        keys.extend(managed.databases.iter().map(|d| extra_password_key(&d.name)));
    }
    keys.extend(spec.app.shared_secrets.iter().map(|name| shared_key(name)));
    keys
}

/// Annotation of the copy: the Secret it restores.
pub const COPY_OF_ANNOTATION: &str = "webcluster.io/copy-of";

/// The generated Secret, when the spec needs one (a database or shared
/// secrets), and the copy of its generated values the controller restores them
/// from when someone deletes the Secret (a database on its volume keeps the
/// passwords it was created with). Both are data objects: under
/// `deletionPolicy: Retain` neither has an owner reference; under `Delete`
/// both go with the WebCluster, as its data does. Holds only values for keys
/// the spec asks for, so a key whose value is missing from `plan` is simply
/// absent (the controller generates every missing value before it builds).
/// None at all while the plan withholds them (values lost, data kept).
pub fn secrets(parent: &Parent, plan: &Plan) -> Vec<Child> {
    if plan.withhold_credentials || (parent.spec.database.is_none() && parent.spec.app.shared_secrets.is_empty()) {
        return Vec::new();
    }
    let generated: BTreeMap<String, String> = generated_keys(parent.spec)
        .into_iter()
        .filter_map(|key| plan.generated.get(&key).map(|value| (key, value.clone())))
        .collect();
    let mut data = generated.clone();
    data.extend(dsn_entries(parent, plan));
    let main = names::credentials(parent.name);
    let mut secrets = vec![opaque(parent.data_meta(main.clone(), Component::Credentials, "webcluster"), data)];
    if !generated.is_empty() {
        let mut meta = parent.data_meta(names::credentials_copy(parent.name), Component::Credentials, "webcluster");
        meta.annotations = Some([(COPY_OF_ANNOTATION.to_string(), main)].into());
        secrets.push(opaque(meta, generated));
    }
    secrets
}

fn opaque(metadata: ObjectMeta, data: BTreeMap<String, String>) -> Child {
    Secret {
        metadata,
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
    .into()
}

/// Secret values shown by their keys only: for `Debug` impls of types that
/// hold them, so no log line prints a value.
pub struct Redacted<'a>(pub &'a BTreeMap<String, String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|key| (key, "<redacted>"))).finish()
    }
}

fn dsn_entries(parent: &Parent, plan: &Plan) -> BTreeMap<String, String> {
    let Some(db) = &parent.spec.database else { return BTreeMap::new() };
    let mut entries = BTreeMap::new();
    for database in app_databases(db) {
        for endpoint in Endpoint::ALL {
            let Some((url, dsn)) = endpoint_dsn(parent, plan, database, endpoint) else { continue };
            entries.extend(DsnPart::ALL.map(|part| (dsn_key(database, endpoint, part), dsn.part(part, &url))));
        }
    }
    entries
}

/// One endpoint's DSN of one database, whole and in parts: built for a managed
/// server, read for an external one (`None` when it was not read).
fn endpoint_dsn(parent: &Parent, plan: &Plan, database: AppDatabase, endpoint: Endpoint) -> Option<(String, Dsn)> {
    let db = parent.spec.database.as_ref()?;
    if let Some(managed) = &db.managed {
        let (name, user, password_key) = match database {
            AppDatabase::Main => (&managed.database_name, &managed.user, DB_PASSWORD.to_string()),
            AppDatabase::Extra(name) => {
                let extra = managed.databases.iter().find(|d| d.name == name)?;
                (&extra.name, &extra.user, extra_password_key(name))
            }
        };
        let service = match endpoint {
            Endpoint::Write => names::database_write(parent.name),
            Endpoint::Read => names::database_read(parent.name),
        };
        let dsn = Dsn {
            scheme: scheme(db.engine),
            host: parent.service_host(&service),
            port: database::port(db.engine).to_string(),
            name: name.clone(),
            user: user.clone(),
            password: plan.generated.get(&password_key).cloned().unwrap_or_default(),
        };
        return Some((dsn.url(), dsn));
    }
    let external = plan.external_db.as_ref()?;
    let urls = match database {
        AppDatabase::Main => external,
        AppDatabase::Extra(name) => external.databases.get(name)?,
    };
    let raw = match endpoint {
        Endpoint::Write => &urls.write,
        Endpoint::Read => &urls.read,
    };
    Some((raw.clone(), Dsn::parse(raw).unwrap_or_default()))
}

/// The URL scheme applications expect: PEAR/Roundcube and Doctrine both accept these.
pub fn scheme(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Postgresql => "pgsql",
        DatabaseEngine::Mariadb => "mysql",
    }
}

/// A DSN split into the parts applications configure separately (no `Debug`:
/// it holds a password).
#[derive(Clone, Default, PartialEq)]
struct Dsn {
    scheme: &'static str,
    host: String,
    port: String,
    name: String,
    user: String,
    password: String,
}

impl Dsn {
    /// Splits an external DSN; `None` when it is not a URL (parts stay empty).
    fn parse(raw: &str) -> Option<Self> {
        let url = url::Url::parse(raw).ok()?;
        Some(Self {
            scheme: "",
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port().map(|p| p.to_string()).unwrap_or_default(),
            name: url.path().trim_start_matches('/').to_string(),
            user: url.username().to_string(),
            password: url.password().unwrap_or_default().to_string(),
        })
    }

    /// One part's value; `url` is the whole DSN.
    fn part(&self, part: DsnPart, url: &str) -> String {
        match part {
            DsnPart::Url => url.to_string(),
            DsnPart::Host => self.host.clone(),
            DsnPart::Port => self.port.clone(),
            DsnPart::Name => self.name.clone(),
            DsnPart::User => self.user.clone(),
            DsnPart::Password => self.password.clone(),
        }
    }

    fn url(&self) -> String {
        format!("{}://{}:{}@{}:{}/{}", self.scheme, self.user, self.password, self.host, self.port, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_external_dsns() {
        let dsn = Dsn::parse("mysql://rc:s3cret@db.example.com:3307/mail").unwrap_or_default();
        assert_eq!(dsn.host, "db.example.com");
        assert_eq!(dsn.port, "3307");
        assert_eq!(dsn.name, "mail");
        assert_eq!(dsn.user, "rc");
        assert_eq!(dsn.password, "s3cret");
        assert!(Dsn::parse("not a url").is_none());
    }

    #[test]
    fn alphabet_is_url_and_quote_safe() {
        assert!(ALPHABET.iter().all(|c| c.is_ascii_alphanumeric()));
    }
}
