//! The store's one query interface over sqlx's two native drivers.
//!
//! Every store function is written once, against this module: [`query`], [`query_as`] and
//! [`query_scalar`] take the SQL both stores understand and the values to bind, and run on a
//! [`Conn`], a [`Pool`] or a [`Tx`](super::Tx) of either store, through that store's own
//! driver (sqlx-sqlite or sqlx-postgres; no `Any` conversion layer between them). Where the
//! dialects really differ, the caller branches on [`Kind`](super::Kind) and may bind what only
//! PostgreSQL takes (arrays, for `UNNEST` and `= ANY`).
//!
//! Written here rather than taken from a crate because sqlx's own answer to "one code path,
//! two databases" is its `Any` driver, which converts every argument and every row through its
//! own value type and cannot bind PostgreSQL's arrays; what is left to us is a small enum
//! dispatch, a few dozen lines per operation.

use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{ColumnIndex, Decode, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction, Type};

/// A pool of either store's connections.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// A connection of the pool, returned to it when dropped.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Conn::new(Inner::SqlitePooled(p.acquire().await?)),
            Pool::Postgres(p) => Conn::new(Inner::PgPooled(p.acquire().await?)),
        })
    }

    /// A transaction on one of the pool's connections (`BEGIN`, or `statement` on SQLite).
    pub(crate) async fn begin_with(&self, sqlite_begin: &str) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Conn::new(Inner::SqliteTx(
                p.begin_with(sqlite_begin.to_owned()).await?,
            )),
            Pool::Postgres(p) => Conn::new(Inner::PgTx(p.begin().await?)),
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Runs a migrator's migrations on this pool.
    pub async fn migrate(
        &self,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Pool::Sqlite(p) => migrator.run(p).await,
            Pool::Postgres(p) => migrator.run(p).await,
        }
    }

    /// The PostgreSQL pool, when this is one (for what only PostgreSQL does, such as `COPY`).
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }
}

/// One connection of either store: pooled, or holding an open transaction.
#[derive(Debug)]
pub struct Conn {
    inner: Inner,
    /// SQL text to run before the next statement, in the same round trip as nothing else
    /// would carry it ([`Conn::defer_script`]).
    deferred: Option<String>,
}

#[derive(Debug)]
enum Inner {
    SqlitePooled(PoolConnection<Sqlite>),
    PgPooled(PoolConnection<Postgres>),
    SqliteTx(Transaction<'static, Sqlite>),
    PgTx(Transaction<'static, Postgres>),
}

/// A native connection, borrowed.
enum Native<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl Conn {
    fn new(inner: Inner) -> Conn {
        Conn {
            inner,
            deferred: None,
        }
    }

    fn native(&mut self) -> Native<'_> {
        match &mut self.inner {
            Inner::SqlitePooled(c) => Native::Sqlite(c),
            Inner::PgPooled(c) => Native::Postgres(c),
            Inner::SqliteTx(t) => Native::Sqlite(t),
            Inner::PgTx(t) => Native::Postgres(t),
        }
    }

    /// Which store this connection is to.
    pub fn kind(&self) -> super::Kind {
        match &self.inner {
            Inner::SqlitePooled(_) | Inner::SqliteTx(_) => super::Kind::Sqlite,
            Inner::PgPooled(_) | Inner::PgTx(_) => super::Kind::Postgres,
        }
    }

    /// The PostgreSQL connection, when this is one (for `COPY`).
    pub fn as_postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self.native() {
            Native::Postgres(c) => Some(c),
            Native::Sqlite(_) => None,
        }
    }

    /// Leaves SQL text (no arguments) to run just before the next statement on this
    /// connection, if one comes: the group commit's savepoints, taken only by work that writes.
    pub fn defer_script(&mut self, sql: String) {
        self.deferred = Some(sql);
    }

    /// Takes back the deferred script if no statement ran since it was left (None when it
    /// ran).
    pub fn take_deferred(&mut self) -> Option<String> {
        self.deferred.take()
    }

    /// Runs the deferred script, if any, before the statement that is about to run.
    async fn run_deferred(&mut self) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        let Some(sql) = self.deferred.take() else {
            return Ok(());
        };
        match self.native() {
            Native::Sqlite(c) => c.execute(sql.as_str()).await.map(drop),
            Native::Postgres(c) => c.execute(sql.as_str()).await.map(drop),
        }
    }

    /// Commits the transaction this connection holds (nothing to do for a plain connection).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.run_deferred().await?;
        match self.inner {
            Inner::SqliteTx(t) => t.commit().await,
            Inner::PgTx(t) => t.commit().await,
            Inner::SqlitePooled(_) | Inner::PgPooled(_) => Ok(()),
        }
    }

    /// Rolls back the transaction this connection holds.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::SqliteTx(t) => t.rollback().await,
            Inner::PgTx(t) => t.rollback().await,
            Inner::SqlitePooled(_) | Inner::PgPooled(_) => Ok(()),
        }
    }

    /// Runs SQL text as it is (several statements, no arguments).
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        if let Some(first) = self.deferred.take() {
            let both = format!("{first}; {sql}");
            return match self.native() {
                Native::Sqlite(c) => c.execute(both.as_str()).await.map(drop),
                Native::Postgres(c) => c.execute(both.as_str()).await.map(drop),
            };
        }
        match self.native() {
            Native::Sqlite(c) => c.execute(sql).await.map(drop),
            Native::Postgres(c) => c.execute(sql).await.map(drop),
        }
    }
}

/// Where a query runs: a connection (or transaction), or a pool.
pub enum Target<'c> {
    Conn(&'c mut Conn),
    Pool(&'c Pool),
}

/// What a query can run on.
pub trait IntoTarget<'c> {
    fn into_target(self) -> Target<'c>;
}

impl<'c> IntoTarget<'c> for &'c mut Conn {
    fn into_target(self) -> Target<'c> {
        Target::Conn(self)
    }
}

impl<'c> IntoTarget<'c> for &'c Pool {
    fn into_target(self) -> Target<'c> {
        Target::Pool(self)
    }
}

impl<'c> IntoTarget<'c> for &'c mut super::Tx {
    fn into_target(self) -> Target<'c> {
        Target::Conn(self)
    }
}

/// One value bound to a query. The types are the ones both stores hold (the store keeps ids
/// as text, money and times as integers); arrays are PostgreSQL's only.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
    /// PostgreSQL only: `text[]`, for `UNNEST($1::text[])` and `= ANY($1)`.
    TextArray(Vec<String>),
    /// PostgreSQL only: `text[]` with NULLs.
    OptTextArray(Vec<Option<String>>),
    /// PostgreSQL only: `bigint[]`.
    IntArray(Vec<i64>),
    /// PostgreSQL only: `bigint[]` with NULLs.
    OptIntArray(Vec<Option<i64>>),
    /// PostgreSQL only: `bytea[]` with NULLs.
    OptBytesArray(Vec<Option<Vec<u8>>>),
}

/// A value that can be bound.
pub trait Bind {
    fn into_arg(self) -> Arg;
}

macro_rules! bind_via {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {
        $(impl Bind for $t {
            fn into_arg(self) -> Arg {
                let f: fn($t) -> _ = $conv;
                Arg::$variant(f(self))
            }
        })*
    };
}

bind_via!(Int:
    i64 => Some,
    i32 => |v| Some(i64::from(v)),
    &i64 => |v| Some(*v),
    &i32 => |v| Some(i64::from(*v)),
    Option<i64> => |v| v,
    Option<i32> => |v| v.map(i64::from),
    &Option<i64> => |v| *v,
);
bind_via!(Text:
    String => Some,
    &String => |v| Some(v.clone()),
    &str => |v| Some(v.to_owned()),
    &&str => |v| Some((*v).to_owned()),
    Option<String> => |v| v,
    Option<&str> => |v| v.map(str::to_owned),
    Option<&String> => |v| v.cloned(),
    &Option<String> => |v| v.clone(),
    std::borrow::Cow<'_, str> => |v| Some(v.into_owned()),
);
bind_via!(Bytes:
    Vec<u8> => Some,
    &Vec<u8> => |v| Some(v.clone()),
    &[u8] => |v| Some(v.to_vec()),
    Option<Vec<u8>> => |v| v,
    Option<&[u8]> => |v| v.map(<[u8]>::to_vec),
    &Option<Vec<u8>> => |v| v.clone(),
);
bind_via!(Bool:
    bool => Some,
    Option<bool> => |v| v,
);
bind_via!(TextArray: Vec<String> => |v| v);
bind_via!(OptTextArray: Vec<Option<String>> => |v| v);
bind_via!(IntArray: Vec<i64> => |v| v);
bind_via!(OptIntArray: Vec<Option<i64>> => |v| v);
bind_via!(OptBytesArray: Vec<Option<Vec<u8>>> => |v| v);

impl Bind for Arg {
    fn into_arg(self) -> Arg {
        self
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn arrays_are_postgres_only() -> sqlx::Error {
    sqlx::Error::Protocol("an array was bound on SQLite (arrays are PostgreSQL's only)".into())
}

fn sqlite_query<'q>(sql: &'q str, args: Vec<Arg>) -> Result<SqliteQuery<'q>, sqlx::Error> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::TextArray(_)
            | Arg::OptTextArray(_)
            | Arg::IntArray(_)
            | Arg::OptIntArray(_)
            | Arg::OptBytesArray(_) => return Err(arrays_are_postgres_only()),
        };
    }
    Ok(q)
}

fn pg_query(sql: &str, args: Vec<Arg>) -> PgQuery<'_> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::TextArray(v) => q.bind(v),
            Arg::OptTextArray(v) => q.bind(v),
            Arg::IntArray(v) => q.bind(v),
            Arg::OptIntArray(v) => q.bind(v),
            Arg::OptBytesArray(v) => q.bind(v),
        };
    }
    q
}

/// Statements with more arguments than this are sent to SQLite with anonymous `?` marks.
const ANONYMOUS_FROM: usize = 32;

/// SQLite: a statement with many `$n` parameters rewritten with anonymous `?` marks, its
/// arguments in the order the marks appear (one used twice is bound twice).
///
/// SQLite keeps `$n` as a *named* parameter and finds a name by walking a list, both when it
/// parses the statement and each time sqlx asks a parameter's name to bind it, so binding a
/// statement of n parameters costs n²: a 100-row insert of 16 columns spent half its time
/// there. An anonymous `?` has no name and no list. No crate rewrites SQLite placeholders, so
/// this small scanner does: it skips quoted text (`'$.programme'`), quoted names and comments.
/// Statements with few arguments, or none, are left as they are.
fn anonymous(sql: &str, args: Vec<Arg>) -> (std::borrow::Cow<'_, str>, Vec<Arg>) {
    if args.len() <= ANONYMOUS_FROM {
        return (std::borrow::Cow::Borrowed(sql), args);
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::with_capacity(args.len());
    let (mut i, mut copied) = (0usize, 0usize);
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' | b'"' => {
                // To the closing quote (a doubled quote is part of the text).
                i = i.saturating_add(1);
                while let Some(&d) = b.get(i) {
                    i = i.saturating_add(1);
                    if d == c {
                        if b.get(i) == Some(&c) {
                            i = i.saturating_add(1);
                        } else {
                            break;
                        }
                    }
                }
            }
            b'-' if b.get(i.saturating_add(1)) == Some(&b'-') => {
                while let Some(&d) = b.get(i) {
                    if d == b'\n' {
                        break;
                    }
                    i = i.saturating_add(1);
                }
            }
            b'$' => {
                let start = i.saturating_add(1);
                let mut end = start;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end = end.saturating_add(1);
                }
                match sql.get(start..end).and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if n >= 1 && n <= args.len() => {
                        out.push_str(sql.get(copied..i).unwrap_or_default());
                        out.push('?');
                        order.push(n.saturating_sub(1));
                        copied = end;
                        i = end;
                    }
                    // Not one of ours (or out of range): left for SQLite to judge.
                    _ => return (std::borrow::Cow::Borrowed(sql), args),
                }
            }
            _ => i = i.saturating_add(1),
        }
    }
    out.push_str(sql.get(copied..).unwrap_or_default());
    // Each argument is moved to its last mark and cloned only for the marks before it (a
    // payroll chunk's 1,600 values are each used once; its shared values once per row).
    let mut last = vec![usize::MAX; args.len()];
    for (at, &k) in order.iter().enumerate() {
        if let Some(l) = last.get_mut(k) {
            *l = at;
        }
    }
    let mut args: Vec<Option<Arg>> = args.into_iter().map(Some).collect();
    let bound = order
        .iter()
        .enumerate()
        .filter_map(|(at, &k)| {
            let slot = args.get_mut(k)?;
            if last.get(k) == Some(&at) {
                slot.take()
            } else {
                slot.clone()
            }
        })
        .collect();
    (std::borrow::Cow::Owned(out), bound)
}

/// A row of either store.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A column's name or position, on either store's rows.
pub trait Column: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Debug {}
impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Debug> Column for I {}

/// A value both stores decode.
pub trait Value<'r>:
    Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>
{
}
impl<'r, T: Decode<'r, Sqlite> + Type<Sqlite> + Decode<'r, Postgres> + Type<Postgres>> Value<'r>
    for T
{
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Row({} columns)", self.len())
    }
}

impl Row {
    pub fn try_get<'r, T: Value<'r>, I: Column>(&'r self, index: I) -> Result<T, sqlx::Error> {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.try_get(index),
            Row::Postgres(r) => r.try_get(index),
        }
    }

    /// [`Row::try_get`], panicking on a missing column or a type mismatch, as sqlx's own
    /// `Row::get` does (tests).
    #[track_caller]
    #[allow(clippy::panic)]
    pub fn get<'r, T: Value<'r>, I: Column>(&'r self, index: I) -> T {
        match self.try_get(index) {
            Ok(v) => v,
            Err(e) => panic!("column: {e}"),
        }
    }

    pub fn len(&self) -> usize {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.len(),
            Row::Postgres(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A row type both stores build (tuples of [`Value`]s, `#[derive(FromRow)]` structs).
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin> Record for T {}

fn record<O: Record>(row: &Row) -> Result<O, sqlx::Error> {
    match row {
        Row::Sqlite(r) => O::from_row(r),
        Row::Postgres(r) => O::from_row(r),
    }
}

/// A single value both stores decode, owned.
pub trait Scalar: for<'r> Value<'r> + Send + Unpin {}
impl<T: for<'r> Value<'r> + Send + Unpin> Scalar for T {}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement and its arguments.
#[must_use = "a query does nothing until it is run"]
pub struct Query<'q> {
    sql: &'q str,
    args: Vec<Arg>,
}

/// A statement whose rows are read as `O`.
#[must_use = "a query does nothing until it is run"]
pub struct QueryAs<'q, O> {
    inner: Query<'q>,
    _out: std::marker::PhantomData<fn() -> O>,
}

/// A statement whose rows are one value each.
#[must_use = "a query does nothing until it is run"]
pub struct QueryScalar<'q, O> {
    inner: Query<'q>,
    _out: std::marker::PhantomData<fn() -> O>,
}

pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

pub fn query_as<O: Record>(sql: &str) -> QueryAs<'_, O> {
    QueryAs {
        inner: query(sql),
        _out: std::marker::PhantomData,
    }
}

pub fn query_scalar<O: Scalar>(sql: &str) -> QueryScalar<'_, O> {
    QueryScalar {
        inner: query(sql),
        _out: std::marker::PhantomData,
    }
}

/// Runs `$body` with `$q` the native query on the target's store and `$e` its executor.
macro_rules! on_native {
    ($self:ident, $target:ident, |$q:ident, $e:ident| $body:expr, $wrap_s:expr, $wrap_p:expr) => {
        match $target.into_target() {
            Target::Pool(Pool::Sqlite(p)) => {
                let (sql, args) = anonymous($self.sql, $self.args);
                let $q = sqlite_query(&sql, args)?;
                let $e = p;
                $body.map($wrap_s)
            }
            Target::Pool(Pool::Postgres(p)) => {
                let $q = pg_query($self.sql, $self.args);
                let $e = p;
                $body.map($wrap_p)
            }
            Target::Conn(c) => match c.run_deferred().await.map(|()| c.native())? {
                Native::Sqlite(c) => {
                    let (sql, args) = anonymous($self.sql, $self.args);
                    let $q = sqlite_query(&sql, args)?;
                    let $e = c;
                    $body.map($wrap_s)
                }
                Native::Postgres(c) => {
                    let $q = pg_query($self.sql, $self.args);
                    let $e = c;
                    $body.map($wrap_p)
                }
            },
        }
    };
}

/// `column IN (…)` for a list bound from `$first` on with [`Query::bind_list`]: on PostgreSQL
/// `column = ANY($first)`, one array, so the statement's text (and the prepared statement the
/// connection keeps for it) is the same however long the list; on SQLite one placeholder per
/// value.
pub fn in_list(kind: super::Kind, column: &str, first: usize, n: usize) -> String {
    match kind {
        super::Kind::Postgres => format!("{column} = ANY(${first})"),
        super::Kind::Sqlite => {
            let marks: Vec<String> = (0..n)
                .map(|i| format!("${}", first.saturating_add(i)))
                .collect();
            format!("{column} IN ({})", marks.join(", "))
        }
    }
}

/// A list for [`in_list`]: text (ids) or integers.
pub enum List {
    Text(Vec<String>),
    Int(Vec<i64>),
}

impl From<Vec<String>> for List {
    fn from(v: Vec<String>) -> Self {
        List::Text(v)
    }
}

impl From<Vec<i64>> for List {
    fn from(v: Vec<i64>) -> Self {
        List::Int(v)
    }
}

impl<'q> Query<'q> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.args.push(value.into_arg());
        self
    }

    /// Binds the values of an [`in_list`] of the same kind: one array on PostgreSQL, each
    /// value on SQLite.
    pub fn bind_list(mut self, kind: super::Kind, values: impl Into<List>) -> Self {
        match (kind, values.into()) {
            (super::Kind::Postgres, List::Text(v)) => self.args.push(Arg::TextArray(v)),
            (super::Kind::Postgres, List::Int(v)) => self.args.push(Arg::IntArray(v)),
            (super::Kind::Sqlite, List::Text(v)) => {
                self.args.extend(v.into_iter().map(|s| Arg::Text(Some(s))));
            }
            (super::Kind::Sqlite, List::Int(v)) => {
                self.args.extend(v.into_iter().map(|i| Arg::Int(Some(i))));
            }
        }
        self
    }

    pub async fn execute<'c>(self, target: impl IntoTarget<'c>) -> Result<Done, sqlx::Error> {
        let done = |r: sqlx::sqlite::SqliteQueryResult| Done {
            rows: r.rows_affected(),
        };
        let done_pg = |r: sqlx::postgres::PgQueryResult| Done {
            rows: r.rows_affected(),
        };
        on_native!(self, target, |q, e| q.execute(e).await, done, done_pg)
    }

    pub async fn fetch_one<'c>(self, target: impl IntoTarget<'c>) -> Result<Row, sqlx::Error> {
        on_native!(
            self,
            target,
            |q, e| q.fetch_one(e).await,
            Row::Sqlite,
            Row::Postgres
        )
    }

    pub async fn fetch_optional<'c>(
        self,
        target: impl IntoTarget<'c>,
    ) -> Result<Option<Row>, sqlx::Error> {
        on_native!(
            self,
            target,
            |q, e| q.fetch_optional(e).await,
            |r| r.map(Row::Sqlite),
            |r| r.map(Row::Postgres)
        )
    }

    pub async fn fetch_all<'c>(self, target: impl IntoTarget<'c>) -> Result<Vec<Row>, sqlx::Error> {
        on_native!(
            self,
            target,
            |q, e| q.fetch_all(e).await,
            |r| r.into_iter().map(Row::Sqlite).collect(),
            |r| r.into_iter().map(Row::Postgres).collect()
        )
    }

    /// The rows as a stream, read as they come (large result sets).
    pub fn fetch<'e, 'c: 'e>(
        self,
        target: impl IntoTarget<'c>,
    ) -> BoxStream<'e, Result<Row, sqlx::Error>>
    where
        'q: 'e,
    {
        let Query { sql, args } = self;
        match target.into_target() {
            Target::Pool(Pool::Sqlite(p)) => match sqlite_query(sql, args) {
                Ok(q) => q.fetch(p).map_ok(Row::Sqlite).boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            },
            Target::Pool(Pool::Postgres(p)) => {
                pg_query(sql, args).fetch(p).map_ok(Row::Postgres).boxed()
            }
            // A stream cannot run the deferred script first: nothing streams in a group commit.
            Target::Conn(c) if c.deferred.is_some() => futures_util::stream::once(async {
                Err(sqlx::Error::Protocol(
                    "a streamed query on a connection with a deferred script".into(),
                ))
            })
            .boxed(),
            Target::Conn(c) => match c.native() {
                Native::Sqlite(c) => match sqlite_query(sql, args) {
                    Ok(q) => q.fetch(c).map_ok(Row::Sqlite).boxed(),
                    Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
                },
                Native::Postgres(c) => pg_query(sql, args).fetch(c).map_ok(Row::Postgres).boxed(),
            },
        }
    }
}

impl<'q, O: Record> QueryAs<'q, O> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.inner = self.inner.bind(value);
        self
    }

    /// See [`Query::bind_list`].
    pub fn bind_list(mut self, kind: super::Kind, values: impl Into<List>) -> Self {
        self.inner = self.inner.bind_list(kind, values);
        self
    }

    pub async fn fetch_one<'c>(self, target: impl IntoTarget<'c>) -> Result<O, sqlx::Error> {
        record(&self.inner.fetch_one(target).await?)
    }

    pub async fn fetch_optional<'c>(
        self,
        target: impl IntoTarget<'c>,
    ) -> Result<Option<O>, sqlx::Error> {
        self.inner
            .fetch_optional(target)
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    pub async fn fetch_all<'c>(self, target: impl IntoTarget<'c>) -> Result<Vec<O>, sqlx::Error> {
        self.inner
            .fetch_all(target)
            .await?
            .iter()
            .map(record)
            .collect()
    }
}

impl<'q, O: Scalar> QueryScalar<'q, O> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.inner = self.inner.bind(value);
        self
    }

    /// See [`Query::bind_list`].
    pub fn bind_list(mut self, kind: super::Kind, values: impl Into<List>) -> Self {
        self.inner = self.inner.bind_list(kind, values);
        self
    }

    pub async fn fetch_one<'c>(self, target: impl IntoTarget<'c>) -> Result<O, sqlx::Error> {
        self.inner.fetch_one(target).await?.try_get(0)
    }

    pub async fn fetch_optional<'c>(
        self,
        target: impl IntoTarget<'c>,
    ) -> Result<Option<O>, sqlx::Error> {
        match self.inner.fetch_optional(target).await? {
            Some(r) => r.try_get(0).map(Some),
            None => Ok(None),
        }
    }

    pub async fn fetch_all<'c>(self, target: impl IntoTarget<'c>) -> Result<Vec<O>, sqlx::Error> {
        self.inner
            .fetch_all(target)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }
}

/// One column of a [`Rows`] relation.
#[derive(Debug, Clone)]
pub enum Col {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Col {
    fn len(&self) -> usize {
        match self {
            Col::Text(v) => v.len(),
            Col::Int(v) => v.len(),
            Col::Bytes(v) => v.len(),
        }
    }

    fn pg_type(&self) -> &'static str {
        match self {
            Col::Text(_) => "text[]",
            Col::Int(_) => "bigint[]",
            Col::Bytes(_) => "bytea[]",
        }
    }

    fn slice(&self, from: usize, to: usize) -> Col {
        match self {
            Col::Text(v) => Col::Text(v.get(from..to).unwrap_or_default().to_vec()),
            Col::Int(v) => Col::Int(v.get(from..to).unwrap_or_default().to_vec()),
            Col::Bytes(v) => Col::Bytes(v.get(from..to).unwrap_or_default().to_vec()),
        }
    }

    fn arg(&self, row: usize) -> Arg {
        match self {
            Col::Text(v) => Arg::Text(v.get(row).cloned().flatten()),
            Col::Int(v) => Arg::Int(v.get(row).copied().flatten()),
            Col::Bytes(v) => Arg::Bytes(v.get(row).cloned().flatten()),
        }
    }
}

/// For an `UPDATE t … FROM u WHERE t.key = u.key`: on PostgreSQL, ` AND {column} = ANY(${param})`
/// over the key's array (bound already as `u`'s column at `$param`), so that the rows are found
/// by the key's index whatever plan is cached. A generic plan made while the table was small (a
/// fresh database) hashes `u` and scans the whole table, and keeps doing so as it grows; a
/// condition on the key itself is an index lookup in every plan. Nothing on SQLite, whose
/// planner looks each `VALUES` row up by the key.
pub fn by_key(kind: super::Kind, column: &str, param: usize) -> String {
    match kind {
        super::Kind::Postgres => format!(" AND {column} = ANY(${param}::text[])"),
        super::Kind::Sqlite => String::new(),
    }
}

/// Many rows bound as one relation named `u`, for set-based statements written once for both
/// stores: `WITH {rows.cte(first)} UPDATE t SET … FROM u WHERE t.id = u.id`, or `INSERT …
/// SELECT … FROM u WHERE true`. On PostgreSQL it is `UNNEST` of one array per column (one
/// statement text whatever the number of rows, so its prepared statement is reused); on
/// SQLite a `VALUES` list, the rows' values bound one by one (sent with anonymous marks).
#[derive(Debug, Clone)]
pub struct Rows {
    names: Vec<&'static str>,
    cols: Vec<Col>,
}

/// SQLite binds at most 32,766 values per statement: a [`Rows`] is cut in parts under that.
const SQLITE_MAX_VALUES: usize = 30_000;

impl Rows {
    /// The relation's columns, each with its values (all of the same length).
    pub fn new(cols: Vec<(&'static str, Col)>) -> Rows {
        let (names, cols) = cols.into_iter().unzip();
        Rows { names, cols }
    }

    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, Col::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows in parts small enough for one statement of `kind` (PostgreSQL: one part).
    pub fn parts(self, kind: super::Kind) -> Vec<Rows> {
        let n = self.len();
        let per = match kind {
            super::Kind::Postgres => n.max(1),
            super::Kind::Sqlite => SQLITE_MAX_VALUES
                .checked_div(self.names.len())
                .unwrap_or(SQLITE_MAX_VALUES)
                .max(1),
        };
        if n <= per {
            return vec![self];
        }
        (0..n)
            .step_by(per)
            .map(|from| {
                let to = from.saturating_add(per).min(n);
                Rows {
                    names: self.names.clone(),
                    cols: self.cols.iter().map(|c| c.slice(from, to)).collect(),
                }
            })
            .collect()
    }

    /// The common table expression `u` (without `WITH`), its values bound from `$first` on.
    pub fn cte(&self, kind: super::Kind, first: usize) -> String {
        self.cte_as(kind, "u", first)
    }

    /// [`Rows::cte`] under another name than `u` (for a statement with two relations).
    pub fn cte_as(&self, kind: super::Kind, name: &str, first: usize) -> String {
        let names = self.names.join(", ");
        match kind {
            super::Kind::Postgres => {
                let arrays: Vec<String> = self
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("${}::{}", first.saturating_add(i), c.pg_type()))
                    .collect();
                format!(
                    "{name} AS (SELECT * FROM UNNEST({}) AS t({names}))",
                    arrays.join(", ")
                )
            }
            super::Kind::Sqlite => {
                let width = self.cols.len();
                let rows: Vec<String> = (0..self.len())
                    .map(|r| {
                        let marks: Vec<String> = (0..width)
                            .map(|c| {
                                format!(
                                    "${}",
                                    first
                                        .saturating_add(r.saturating_mul(width))
                                        .saturating_add(c)
                                )
                            })
                            .collect();
                        format!("({})", marks.join(", "))
                    })
                    .collect();
                format!("{name}({names}) AS (VALUES {})", rows.join(", "))
            }
        }
    }

    /// The values, in the order [`Rows::cte`] numbered them.
    fn args(self, kind: super::Kind) -> Vec<Arg> {
        match kind {
            super::Kind::Postgres => self
                .cols
                .into_iter()
                .map(|c| match c {
                    Col::Text(v) => Arg::OptTextArray(v),
                    Col::Int(v) => Arg::OptIntArray(v),
                    Col::Bytes(v) => Arg::OptBytesArray(v),
                })
                .collect(),
            super::Kind::Sqlite => {
                let n = self.len();
                let mut out = Vec::with_capacity(n.saturating_mul(self.cols.len()));
                for r in 0..n {
                    out.extend(self.cols.iter().map(|c| c.arg(r)));
                }
                out
            }
        }
    }
}

impl<'q> Query<'q> {
    /// Binds the values of a [`Rows`] whose `cte` was written from the next parameter on.
    pub fn bind_rows(mut self, kind: super::Kind, rows: Rows) -> Self {
        self.args.extend(rows.args(kind));
        self
    }
}

impl<'q, O: Scalar> QueryScalar<'q, O> {
    /// Binds the values of a [`Rows`] whose `cte` was written from the next parameter on.
    pub fn bind_rows(mut self, kind: super::Kind, rows: Rows) -> Self {
        self.inner = self.inner.bind_rows(kind, rows);
        self
    }
}

impl<'q, O: Record> QueryAs<'q, O> {
    /// Binds the values of a [`Rows`] whose `cte` was written from the next parameter on.
    pub fn bind_rows(mut self, kind: super::Kind, rows: Rows) -> Self {
        self.inner = self.inner.bind_rows(kind, rows);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{anonymous, Arg};

    fn texts(n: usize) -> Vec<Arg> {
        (1..=n).map(|i| Arg::Text(Some(format!("v{i}")))).collect()
    }

    fn shown(args: &[Arg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Text(Some(s)) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn few_arguments_are_left_as_they_are() {
        let (sql, args) = anonymous("SELECT $2, $1", texts(2));
        assert_eq!(sql, "SELECT $2, $1");
        assert_eq!(shown(&args), ["v1", "v2"]);
    }

    #[test]
    fn marks_follow_the_order_of_appearance_and_repeat() {
        let marks: Vec<String> = (3..=40).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO t VALUES ($2, '$.x', \"a$1\", $1, {}) -- $9\n, $2",
            marks.join(", ")
        );
        let (out, args) = anonymous(&sql, texts(40));
        let q: Vec<String> = (3..=40).map(|_| "?".to_owned()).collect();
        assert_eq!(
            out,
            format!(
                "INSERT INTO t VALUES (?, '$.x', \"a$1\", ?, {}) -- $9\n, ?",
                q.join(", ")
            )
        );
        let mut want = vec!["v2".to_owned(), "v1".to_owned()];
        want.extend((3..=40).map(|i| format!("v{i}")));
        want.push("v2".to_owned());
        assert_eq!(shown(&args), want);
    }

    #[test]
    fn a_quote_inside_text_does_not_end_it() {
        let marks: Vec<String> = (1..=33).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT 'it''s $5', {}", marks.join(","));
        let (out, args) = anonymous(&sql, texts(33));
        assert!(out.starts_with("SELECT 'it''s $5', ?,?"), "{out}");
        assert_eq!(args.len(), 33);
    }

    #[test]
    fn a_mark_out_of_range_leaves_the_statement_alone() {
        let marks: Vec<String> = (1..=34).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {}", marks.join(","));
        let (out, args) = anonymous(&sql, texts(33));
        assert_eq!(out, sql);
        assert_eq!(args.len(), 33);
    }
}
