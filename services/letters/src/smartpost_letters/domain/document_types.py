"""The account's document-type tree (folders shown to customers in the portal, at most five levels)."""

from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate

from smartpost_letters.domain.errors import DocumentTypeError
from smartpost_shared.contracts.common import DocumentType

MAX_DEPTH = 5
MAX_NAME_LENGTH = 100
TREE_NAMESPACE = uuid.UUID("0c2b8f7e-8d0e-4d4f-9c59-7a3f0b1f6a21")


def tree_id_for(account_id: str) -> uuid.UUID:
    return uuid.uuid5(TREE_NAMESPACE, account_id)


class DocumentTypeTree(Aggregate):
    """One tree per account; nodes are ``{node_id: {"name": ..., "parent_id": ...}}``."""

    class Event(Aggregate.Event):
        actor: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, DocumentTypeTree)
            self.effect(aggregate)

        def effect(self, tree: DocumentTypeTree) -> None:
            """Changes the tree; overridden by each event."""

    class Created(Event, Aggregate.Created):
        account_id: str

    def __init__(self, *, actor: str, account_id: str) -> None:
        self.account_id = account_id
        self.created_by = actor
        self.nodes: dict[str, dict[str, str | None]] = {}

    @classmethod
    def create(cls, *, account_id: str, actor: str) -> DocumentTypeTree:
        return cls._create(cls.Created, id=tree_id_for(account_id), account_id=account_id, actor=actor)

    # --------------------------------------------------------------------------------------------- queries

    def path(self, node_id: str) -> list[str]:
        if node_id not in self.nodes:
            raise DocumentTypeError(f"document type {node_id} does not exist")
        names: list[str] = []
        current: str | None = node_id
        while current is not None:
            node = self.nodes[current]
            names.append(str(node["name"]))
            current = node["parent_id"]
        return list(reversed(names))

    def document_type(self, node_id: str) -> DocumentType:
        return DocumentType(id=node_id, path=self.path(node_id))

    def children(self, node_id: str | None) -> list[str]:
        return [n for n, node in self.nodes.items() if node["parent_id"] == node_id]

    def _subtree_height(self, node_id: str) -> int:
        kids = self.children(node_id)
        return 1 + max((self._subtree_height(k) for k in kids), default=0)

    def _check_name(self, name: str, parent_id: str | None, exclude: str | None = None) -> str:
        name = name.strip()
        if not name:
            raise DocumentTypeError("a document type needs a name")
        if len(name) > MAX_NAME_LENGTH:
            raise DocumentTypeError(f"document type names have at most {MAX_NAME_LENGTH} characters")
        for sibling in self.children(parent_id):
            if sibling != exclude and str(self.nodes[sibling]["name"]).casefold() == name.casefold():
                raise DocumentTypeError(f"a document type named {name!r} already exists at this level")
        return name

    # --------------------------------------------------------------------------------------------- commands

    class NodeAdded(Event):
        node_id: str
        name: str
        parent_id: str | None

        def effect(self, tree: DocumentTypeTree) -> None:
            tree.nodes[self.node_id] = {"name": self.name, "parent_id": self.parent_id}

    def add(self, *, node_id: str, name: str, parent_id: str | None, actor: str) -> None:
        if node_id in self.nodes:
            raise DocumentTypeError(f"document type {node_id} already exists")
        depth = 1 if parent_id is None else len(self.path(parent_id)) + 1
        if depth > MAX_DEPTH:
            raise DocumentTypeError(f"document types can be nested at most {MAX_DEPTH} levels deep")
        name = self._check_name(name, parent_id)
        self.trigger_event(self.NodeAdded, node_id=node_id, name=name, parent_id=parent_id, actor=actor)

    class NodeChanged(Event):
        node_id: str
        name: str
        parent_id: str | None

        def effect(self, tree: DocumentTypeTree) -> None:
            tree.nodes[self.node_id] = {"name": self.name, "parent_id": self.parent_id}

    def change(self, *, node_id: str, name: str, parent_id: str | None, actor: str) -> None:
        """Rename and/or move a node (with its subtree)."""
        self.path(node_id)
        if parent_id is not None:
            ancestors = self.path(parent_id)  # raises if unknown
            current: str | None = parent_id
            while current is not None:
                if current == node_id:
                    raise DocumentTypeError("a document type cannot be moved below itself")
                current = self.nodes[current]["parent_id"]
            depth = len(ancestors) + self._subtree_height(node_id)
        else:
            depth = self._subtree_height(node_id)
        if depth > MAX_DEPTH:
            raise DocumentTypeError(f"document types can be nested at most {MAX_DEPTH} levels deep")
        name = self._check_name(name, parent_id, exclude=node_id)
        self.trigger_event(self.NodeChanged, node_id=node_id, name=name, parent_id=parent_id, actor=actor)

    class NodeRemoved(Event):
        node_id: str

        def effect(self, tree: DocumentTypeTree) -> None:
            del tree.nodes[self.node_id]

    def remove(self, *, node_id: str, actor: str) -> None:
        self.path(node_id)
        if self.children(node_id):
            raise DocumentTypeError("remove the sub-types first: this document type has children")
        self.trigger_event(self.NodeRemoved, node_id=node_id, actor=actor)
