"""merchants, stores and categories

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

from tianfu.orm import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The base taxonomy, frozen here as reference data: later changes go in later migrations.
# (code, name_zh, parent code, keywords a WeChat user may type, sort order)
CATEGORIES: list[tuple[str, str, str | None, list[str], int]] = [
    ("food", "餐饮", None, ["美食", "吃饭", "餐厅", "餐饮", "吃的"], 10),
    ("hotpot", "火锅", "food", ["火锅", "串串", "串串香", "冒菜"], 11),
    ("sichuan", "川菜", "food", ["川菜", "家常菜", "中餐"], 12),
    ("snacks", "小吃", "food", ["小吃", "面馆", "抄手", "钵钵鸡", "兔头"], 13),
    ("bbq", "烧烤", "food", ["烧烤", "烤肉", "夜宵"], 14),
    ("coffee", "咖啡", None, ["咖啡", "coffee", "拿铁", "下午茶"], 20),
    ("tea", "茶饮", None, ["奶茶", "茶饮", "茶馆", "喝茶"], 25),
    ("supermarket", "超市", None, ["超市", "买菜", "生鲜"], 30),
    ("convenience", "便利店", None, ["便利店", "便利"], 35),
    ("cinema", "电影院", None, ["电影", "影院", "电影院", "看电影"], 40),
    ("hotel", "酒店", None, ["酒店", "住宿", "宾馆"], 50),
    ("fitness", "健身", None, ["健身", "运动", "瑜伽", "游泳"], 60),
    ("entertainment", "休闲娱乐", None, ["KTV", "唱歌", "娱乐", "桌游", "剧本杀"], 70),
    ("beauty", "丽人", None, ["美发", "美甲", "美容"], 80),
]

_status_merchant = sa.Enum(
    "pending",
    "approved",
    "suspended",
    name="merchant_status",
    native_enum=False,
    create_constraint=True,
    length=32,
)
_status_store = sa.Enum(
    "open",
    "temporarily_closed",
    "closed",
    name="store_status",
    native_enum=False,
    create_constraint=True,
    length=32,
)


def upgrade() -> None:
    categories = op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["categories.id"],
            name=op.f("fk_categories_parent_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("code", name=op.f("uq_categories_code")),
        sa.UniqueConstraint("name_zh", name=op.f("uq_categories_name_zh")),
    )
    op.create_index(op.f("ix_categories_parent_id"), "categories", ["parent_id"])

    op.create_table(
        "merchants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("status", _status_merchant, nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_merchants_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_merchants_external_ref")),
    )
    op.create_index(op.f("ix_merchants_category_id"), "merchants", ["category_id"])
    op.create_index(op.f("ix_merchants_status"), "merchants", ["status"])

    # create_geospatial_table registers the geometry column with SpatiaLite
    # (RecoverGeometryColumn) and builds its spatial index on both backends.
    op.create_geospatial_table(
        "stores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("district", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column(
            "location_gcj02",
            Geometry(geometry_type="POINT", srid=4326, spatial_index=True, nullable=False),
            nullable=False,
        ),
        sa.Column("opening_hours", sa.JSON(), nullable=False),
        sa.Column("status", _status_store, nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_stores_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_stores_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stores")),
        sa.UniqueConstraint(
            "merchant_id", "external_ref", name=op.f("uq_stores_merchant_id_external_ref")
        ),
    )
    op.create_index(op.f("ix_stores_category_id"), "stores", ["category_id"])
    op.create_index(op.f("ix_stores_merchant_id"), "stores", ["merchant_id"])
    op.create_index("ix_stores_status_category", "stores", ["status", "category_id"])

    _insert_categories(categories)


def _insert_categories(categories: sa.Table) -> None:
    ids = {code: index for index, (code, *_rest) in enumerate(CATEGORIES, start=1)}
    op.bulk_insert(
        categories,
        [
            {
                "id": ids[code],
                "code": code,
                "name_zh": name_zh,
                "parent_id": ids[parent] if parent else None,
                "keywords": keywords,
                "sort_order": sort_order,
            }
            for code, name_zh, parent, keywords, sort_order in CATEGORIES
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids leave the sequence behind; the next INSERT would collide.
        op.execute("SELECT setval('categories_id_seq', (SELECT max(id) FROM categories))")


def downgrade() -> None:
    op.drop_index("ix_stores_status_category", table_name="stores")
    op.drop_index(op.f("ix_stores_merchant_id"), table_name="stores")
    op.drop_index(op.f("ix_stores_category_id"), table_name="stores")
    op.drop_geospatial_table("stores")
    op.drop_index(op.f("ix_merchants_status"), table_name="merchants")
    op.drop_index(op.f("ix_merchants_category_id"), table_name="merchants")
    op.drop_table("merchants")
    op.drop_index(op.f("ix_categories_parent_id"), table_name="categories")
    # SQLite's DROP TABLE deletes row by row with foreign keys enforced: children go first.
    op.execute("DELETE FROM categories WHERE parent_id IS NOT NULL")
    op.drop_table("categories")
