"""Master data that other internal systems (ERP connectors, importers) publish on ``masterdata.events``."""

from __future__ import annotations

from datetime import date

from pydantic import EmailStr

from smartpost_shared.contracts.base import EventPayload
from smartpost_shared.contracts.common import ChannelPreference, ContractRole, Id, PostalAddress
from smartpost_shared.contracts.envelope import register


@register
class PropertyUpserted(EventPayload):
    event_type = "PropertyUpserted"
    property_id: Id
    reference: str
    name: str
    address: PostalAddress = PostalAddress()


@register
class UnitUpserted(EventPayload):
    event_type = "UnitUpserted"
    unit_id: Id
    property_id: Id
    number: str
    position: str = ""


@register
class ContactUpserted(EventPayload):
    event_type = "ContactUpserted"
    contact_id: Id
    reference_id: str | None = None
    salutation: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    address: PostalAddress = PostalAddress()
    email: EmailStr | None = None
    channel_preference: ChannelPreference = ChannelPreference.ONLINE
    portal_registered: bool = False
    archived: bool = False


@register
class ContactArchived(EventPayload):
    event_type = "ContactArchived"
    contact_id: Id


@register
class ContractUpserted(EventPayload):
    event_type = "ContractUpserted"
    contract_id: Id
    contact_id: Id
    unit_id: Id
    property_id: Id
    role: ContractRole
    start: date
    end: date | None = None
    contract_number: str = ""


@register
class ContactErasureRequested(EventPayload):
    """GDPR Art. 17: erase this contact's personal data in every service (``smartpost_shared.privacy``).

    Published by the assignment service (the owner of master data) when an admin of the account asks for it; it
    travels on ``masterdata.events`` (key: account) so it is ordered after the contact's earlier upserts. Every
    service that holds personal data erases it in the same transaction as it records the erasure (audit).
    """

    event_type = "ContactErasureRequested"
    erasure_id: Id
    contact_id: Id
    requested_by: str
    reason: str = ""
