//! Connecting at start-up, for an operator reading the terminal or the log:
//! the database URL is checked before use, a server that cannot be reached is
//! tried again a bounded number of times (each retry logged), and a failure
//! says which database or host and what to do about it — never the
//! client-facing "internal server error". Passwords in URLs are never shown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr};
use tracing::warn;

/// The URL schemes the gateway connects to.
pub(crate) const SUPPORTED_SCHEMES: [&str; 3] = ["sqlite", "postgres", "postgresql"];
/// How many times an unreachable server is tried before start-up gives up.
pub(crate) const CONNECT_ATTEMPTS: u32 = 5;
/// The pause before the first retry; it doubles after each (0.25 s, 0.5 s, 1 s, 2 s).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
/// How long one attempt waits for the server.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The database a URL names, as far as messages need it.
#[derive(Debug)]
pub(super) enum Target {
    /// The database file (`None`: in memory).
    Sqlite { path: Option<PathBuf> },
    Postgres {
        host: String,
        port: u16,
        user: Option<String>,
        database: Option<String>,
    },
}

impl Target {
    /// Checks the URL's scheme and reads what messages name.
    pub(super) fn parse(url: &str) -> Result<Target, String> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(format!(
                "the database URL '{}' has no scheme; supported: {}",
                redacted(url),
                supported()
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let file = rest.trim_start_matches("//");
                let file = file.split_once('?').map_or(file, |(file, _)| file);
                let path = match file {
                    "" | ":memory:" => None,
                    file => Some(PathBuf::from(file)),
                };
                Ok(Target::Sqlite { path })
            }
            "postgres" | "postgresql" => {
                let parsed = url::Url::parse(url).map_err(|err| {
                    format!(
                        "the database URL '{}' is not a valid URL: {err}",
                        redacted(url)
                    )
                })?;
                let database = parsed.path().trim_start_matches('/');
                Ok(Target::Postgres {
                    host: parsed.host_str().unwrap_or("localhost").to_owned(),
                    port: parsed.port().unwrap_or(5432),
                    user: Some(parsed.username())
                        .filter(|u| !u.is_empty())
                        .map(String::from),
                    database: Some(database).filter(|d| !d.is_empty()).map(String::from),
                })
            }
            other => Err(format!(
                "unsupported database URL scheme '{other}:' in '{}'; supported: {}",
                redacted(url),
                supported()
            )),
        }
    }

    /// On PostgreSQL, waits until the server answers one connection, trying
    /// again (logged) while it cannot be reached, at most [`CONNECT_ATTEMPTS`]
    /// times. The pool itself retries silently until its timeout; this is
    /// what lets the operator see each attempt and a prompt, named failure.
    pub(super) async fn wait_until_reachable(&self, url: &str) -> Result<(), String> {
        use sqlx::Connection;
        if !matches!(self, Target::Postgres { .. }) {
            return Ok(());
        }
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=CONNECT_ATTEMPTS {
            let connected =
                tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(url)).await;
            let err = match connected {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    return Ok(());
                }
                Ok(Err(err)) => err,
                Err(_) => sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                )),
            };
            if !unreachable(&err) || attempt == CONNECT_ATTEMPTS {
                return Err(self.explain_sqlx(Some(&err), &err));
            }
            warn!(
                attempt,
                of = CONNECT_ATTEMPTS,
                retry_in = ?delay,
                reason = %err,
                "the database cannot be reached yet; trying again"
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        unreachable!("the last attempt returns")
    }

    /// What went wrong connecting, and what to do about it.
    pub(super) fn explain(&self, err: &DbErr) -> String {
        self.explain_sqlx(sqlx_error(err), err)
    }

    /// [`Target::explain`] of the sqlx error beneath, if any; `err` is what
    /// to quote otherwise.
    fn explain_sqlx(&self, sqlx: Option<&sqlx::Error>, err: &dyn std::fmt::Display) -> String {
        let detail = || detail(sqlx, err);
        match self {
            Target::Sqlite { path } => {
                let code = match sqlx {
                    Some(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
                    _ => None,
                };
                match (path, code.as_deref()) {
                    // SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM
                    (Some(path), Some("14" | "8" | "3")) => format!(
                        "cannot open the SQLite database {}: {}",
                        path.display(),
                        why_not_writable(path)
                    ),
                    (Some(path), _) => format!(
                        "cannot open the SQLite database {}: {}",
                        path.display(),
                        detail()
                    ),
                    (None, _) => {
                        format!("cannot open an in-memory SQLite database: {}", detail())
                    }
                }
            }
            Target::Postgres {
                host,
                port,
                user,
                database,
            } => {
                let user = user.as_deref().unwrap_or("(the default user)");
                let database = database.as_deref().unwrap_or(user);
                let code = match sqlx {
                    Some(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
                    _ => None,
                };
                match code.as_deref() {
                    Some("3D000") => format!(
                        "the PostgreSQL database '{database}' does not exist on {host}:{port}; \
                         create it with `createdb -h {host} -p {port} -U {user} {database}` \
                         (or `CREATE DATABASE \"{database}\"`), then start again"
                    ),
                    Some("28P01" | "28000") => format!(
                        "PostgreSQL at {host}:{port} refused user '{user}': {} \
                         (check the user and password of --database-url, and pg_hba.conf)",
                        detail()
                    ),
                    _ if sqlx.is_some_and(unreachable) => format!(
                        "cannot reach PostgreSQL at {host}:{port} after {CONNECT_ATTEMPTS} attempts: {} \
                         (is the server running, and are the host and port of --database-url right?)",
                        detail()
                    ),
                    _ => format!(
                        "connecting to PostgreSQL at {host}:{port} (database '{database}', user '{user}'): {}",
                        detail()
                    ),
                }
            }
        }
    }
}

/// The sqlx error beneath a connection error, if there is one.
fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// Whether the server could not be reached (so trying again may help).
fn unreachable(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
}

/// The database's own words, without sea-orm's wrapping.
fn detail(sqlx: Option<&sqlx::Error>, err: &dyn std::fmt::Display) -> String {
    match sqlx {
        Some(sqlx::Error::Database(db)) => db.message().to_owned(),
        Some(sqlx::Error::PoolTimedOut) => {
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())
        }
        Some(other) => other.to_string(),
        None => err.to_string(),
    }
}

/// Why SQLite could not open or create `path`, found by asking the file system.
fn why_not_writable(path: &Path) -> String {
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !directory.exists() {
        return format!("its directory {} does not exist", directory.display());
    }
    if !directory.is_dir() {
        return format!("{} is not a directory", directory.display());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Err(err) => format!("the file cannot be written ({err})"),
        Ok(_) => format!(
            "the file or its directory {} is not writable",
            directory.display()
        ),
    }
}

fn supported() -> String {
    SUPPORTED_SCHEMES.map(|s| format!("{s}://")).join(", ")
}

/// `url` with any password replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_messages() {
        let err = Target::parse("mysql://admin:hunter2@db:3306/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("admin:***@db"), "{err}");
        assert!(
            err.contains("sqlite://, postgres://, postgresql://"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        match Target::parse("sqlite://data/actiongate.db?mode=rwc").unwrap() {
            Target::Sqlite { path } => {
                assert_eq!(path, Some(PathBuf::from("data/actiongate.db")))
            }
            other => panic!("{other:?}"),
        }
    }
}
