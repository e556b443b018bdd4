//! The example service's data: row types, models, and the named queries of
//! `models/example/queries.sql`.

use chrono::{DateTime, Utc};
use stubs::example::ExampleItem;
use stubs::example::events::{ItemCreated, ItemDeleted, ItemUpdated};
use stubs::example::items::{CreateItem, ExpireItem, Item, Order, PlaceOrder, UpdateItem};
use uuid::Uuid;
use worker_kit::db::{
    Changes, Client, DbError, Executor, Insert, Model, Page, PageRequest, Record, queries,
};
use worker_kit::outbox::Emit;
use worker_kit::queue::Schedule;

/// A row of `items`.
#[derive(Debug, Clone, Record)]
#[record(table = "items")]
pub struct ItemRow {
    id: i64,
    name: String,
    price_cents: i64,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Self {
        Item {
            id: r.id,
            name: r.name,
            price_cents: r.price_cents,
            tags: r.tags,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Insert)]
struct NewItemRow<'a> {
    name: &'a str,
    price_cents: i64,
    tags: &'a [String],
}

#[derive(Changes)]
struct ItemChangesRow<'a> {
    name: Option<&'a str>,
    price_cents: Option<i64>,
    tags: Option<&'a [String]>,
}

/// A row of `orders`.
#[derive(Debug, Clone, Record)]
#[record(table = "orders")]
pub struct OrderRow {
    id: Uuid,
    idempotency_key: String,
    item_id: i64,
    quantity: i32,
    created_at: DateTime<Utc>,
}

impl From<OrderRow> for Order {
    fn from(r: OrderRow) -> Self {
        Order {
            id: r.id,
            idempotency_key: r.idempotency_key,
            item_id: r.item_id,
            quantity: r.quantity,
            created_at: r.created_at,
        }
    }
}

#[derive(Insert)]
struct NewOrderRow<'a> {
    idempotency_key: &'a str,
    item_id: i64,
    quantity: i32,
}

/// The named queries of `models/example/queries.sql`, as methods on a client or a
/// transaction.
#[queries("../../models/example/queries.sql")]
pub trait ExampleQueries {
    /// Items whose name contains `text`.
    async fn search_items(&self, text: &str, limit: i64) -> Result<Vec<ItemRow>, DbError>;
    /// How many items there are.
    async fn count_items(&self) -> Result<i64, DbError>;
    /// The orders of one item, oldest first.
    async fn orders_for_item(&self, item_id: i64) -> Result<Vec<OrderRow>, DbError>;
    /// Adds a tag unless present; returns the rows changed (0 or 1).
    async fn tag_item(&self, id: i64, tag: &str) -> Result<u64, DbError>;
}

/// Default and largest page size of list and search.
const DEFAULT_LIMIT: u32 = 100;

/// Longest item name, in bytes (documented on `CreateItem`).
pub const MAX_NAME_BYTES: usize = 256;
/// Most tags on an item.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;
/// Most bytes of items (as JSON) in one page of `example.items.list`: a page is cut short
/// (with `last_reference` set) rather than grow past what a reply may carry, whatever the
/// stored rows hold.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Refuses item fields beyond the limits: stored data is read back into replies, and a few
/// unbounded items would make every list reply larger than the broker accepts.
fn check_fields(name: Option<&str>, tags: Option<&[String]>) -> Result<(), DbError> {
    if let Some(name) = name.filter(|n| n.len() > MAX_NAME_BYTES) {
        return Err(DbError::Invalid(format!(
            "name must be at most {MAX_NAME_BYTES} bytes, got {}",
            name.len()
        )));
    }
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > MAX_TAGS {
        return Err(DbError::Invalid(format!(
            "tags: at most {MAX_TAGS}, got {}",
            tags.len()
        )));
    }
    if let Some(t) = tags.iter().find(|t| t.len() > MAX_TAG_BYTES) {
        return Err(DbError::Invalid(format!(
            "each tag must be at most {MAX_TAG_BYTES} bytes, got one of {}",
            t.len()
        )));
    }
    Ok(())
}

/// The first items of `page` whose JSON fits [`MAX_PAGE_BYTES`]; when some are left out,
/// `last_reference` points after the last one kept, so paging goes on from there.
fn within_page_budget(page: Page<Item, i64>) -> Page<Item, i64> {
    let mut bytes = 0;
    let mut kept = Vec::with_capacity(page.items.len());
    let total = page.items.len();
    for item in page.items {
        // An item is a few KiB at most (the field limits); its size as JSON is counted as
        // the reply will carry it.
        bytes += serde_json::to_vec(&item).map_or(0, |v| v.len()) + 1;
        if bytes > MAX_PAGE_BYTES && !kept.is_empty() {
            break;
        }
        kept.push(item);
    }
    if kept.len() == total {
        return Page {
            items: kept,
            last_reference: page.last_reference,
        };
    }
    let last_reference = kept.last().map(|i: &Item| i.id);
    Page {
        items: kept,
        last_reference,
    }
}

/// The example service's data access.
#[derive(Clone, Debug)]
pub struct Store {
    db: Client,
    items: Model<ItemRow>,
    orders: Model<OrderRow>,
}

impl Store {
    /// A store on `db`.
    pub fn new(db: Client) -> Self {
        Self {
            items: Model::new(db.clone()),
            orders: Model::new(db.clone()),
            db,
        }
    }

    /// The database client.
    pub fn db(&self) -> &Client {
        &self.db
    }

    /// The names of the tables in the `public` schema, sorted.
    ///
    /// # Errors
    ///
    /// `Unavailable`.
    pub async fn public_tables(&self) -> Result<Vec<String>, DbError> {
        let rows = self
            .db
            .query_rows(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The `example_item` rows whose `string` is `string`.
    ///
    /// # Errors
    ///
    /// `Unavailable`.
    pub async fn example_items(&self, string: &str) -> Result<Vec<ExampleItem>, DbError> {
        let rows = self
            .db
            .query_rows(
                "SELECT _id, string, integer, json FROM example_item WHERE string = $1 ORDER BY _id",
                &[&string],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ExampleItem {
                    id: r.try_get(0)?,
                    string: r.try_get(1)?,
                    integer: r.try_get(2)?,
                    json: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Creates an item.
    ///
    /// # Errors
    ///
    /// `Conflict` when the name is taken, `Invalid` for a blank name or a negative price.
    pub async fn create_item(&self, req: &CreateItem) -> Result<Item, DbError> {
        self.create_item_expiring(req, None).await
    }

    /// Creates an item that, given `expires_in`, expires that long after: an
    /// `example.items.expire` message scheduled in the transaction that creates it, so an
    /// item never exists without its expiry.
    ///
    /// # Errors
    ///
    /// As [`Store::create_item`].
    pub async fn create_item_expiring(
        &self,
        req: &CreateItem,
        expires_in: Option<std::time::Duration>,
    ) -> Result<Item, DbError> {
        check_fields(Some(&req.name), Some(&req.tags))?;
        let req = req.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let new = NewItemRow {
                        name: &req.name,
                        price_cents: req.price_cents,
                        tags: &req.tags,
                    };
                    let item: Item = Model::<ItemRow, _>::new(tx).create_one(&new).await?.into();
                    tx.emit(&ItemCreated(item.clone())).await?;
                    if let Some(after) = expires_in {
                        tx.schedule_after(after, &ExpireItem { id: item.id })
                            .await?;
                    }
                    Ok(item)
                })
            })
            .await
    }

    /// One item.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    pub async fn get_item(&self, id: i64) -> Result<Item, DbError> {
        Ok(self.items.read_one_by_id(&id).await?.into())
    }

    /// A page of items after `after`.
    ///
    /// # Errors
    ///
    /// `Unavailable`.
    pub async fn list_items(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<Item, i64>, DbError> {
        let page = self
            .items
            .read_many(PageRequest {
                after,
                limit: worker_kit::db::page_limit(limit, DEFAULT_LIMIT)?,
            })
            .await?;
        Ok(within_page_budget(Page {
            items: page.items.into_iter().map(Item::from).collect(),
            last_reference: page.last_reference,
        }))
    }

    /// Changes the given fields of an item.
    ///
    /// # Errors
    ///
    /// `EmptyUpdate` when no field is given, `NotFound`, `Conflict`, `Invalid`.
    pub async fn update_item(&self, req: &UpdateItem) -> Result<Item, DbError> {
        check_fields(req.name.as_deref(), req.tags.as_deref())?;
        let req = req.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let changes = ItemChangesRow {
                        name: req.name.as_deref(),
                        price_cents: req.price_cents,
                        tags: req.tags.as_deref(),
                    };
                    let item: Item = Model::<ItemRow, _>::new(tx)
                        .update_one_by_id(&req.id, &changes)
                        .await?
                        .into();
                    tx.emit(&ItemUpdated(item.clone())).await?;
                    Ok(item)
                })
            })
            .await
    }

    /// Adds `tag` to an item unless it has it; returns whether it changed. A change emits
    /// `example.item.updated` in the same transaction, as every change of an item does (a
    /// change without its event would leave the read models behind for good).
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown item.
    pub async fn tag_item(&self, id: i64, tag: &str) -> Result<bool, DbError> {
        let tag = tag.to_owned();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    if tx.tag_item(id, &tag).await? == 0 {
                        // Unchanged, or no such item: tell which.
                        Model::<ItemRow, _>::new(tx).read_one_by_id(&id).await?;
                        return Ok(false);
                    }
                    let item: Item = Model::<ItemRow, _>::new(tx)
                        .read_one_by_id(&id)
                        .await?
                        .into();
                    tx.emit(&ItemUpdated(item)).await?;
                    Ok(true)
                })
            })
            .await
    }

    /// Deletes an item.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Conflict` while orders refer to it.
    pub async fn delete_item(&self, id: i64) -> Result<Item, DbError> {
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let item: Item = Model::<ItemRow, _>::new(tx)
                        .delete_one_by_id(&id)
                        .await?
                        .into();
                    tx.emit(&ItemDeleted { id }).await?;
                    Ok(item)
                })
            })
            .await
    }

    /// Deletes an item that expired; `false` when it is gone already (deleted by a caller,
    /// or this is a second delivery of its expiry).
    ///
    /// # Errors
    ///
    /// `Conflict` while orders refer to it.
    pub async fn expire_item(&self, id: i64) -> Result<bool, DbError> {
        match self.delete_item(id).await {
            Ok(_) => Ok(true),
            Err(DbError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Items whose name contains `text`.
    ///
    /// # Errors
    ///
    /// `Unavailable`.
    pub async fn search_items(&self, text: &str, limit: Option<u32>) -> Result<Vec<Item>, DbError> {
        let limit = i64::from(worker_kit::db::page_limit(limit, DEFAULT_LIMIT)?);
        let rows = self.db.search_items(text, limit).await?;
        Ok(rows.into_iter().map(Item::from).collect())
    }

    /// Places an order once per idempotency key.
    ///
    /// # Errors
    ///
    /// `Conflict` when the item does not exist, `Invalid` for a quantity below 1.
    pub async fn place_order(&self, req: &PlaceOrder) -> Result<(Order, bool), DbError> {
        let new = NewOrderRow {
            idempotency_key: &req.idempotency_key,
            item_id: req.item_id,
            quantity: req.quantity,
        };
        let (row, created) = self
            .orders
            .create_one_idempotent(&new, "idempotency_key")
            .await?;
        Ok((row.into(), created))
    }
}
