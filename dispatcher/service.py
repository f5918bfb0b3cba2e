"""The composition root: builds the store, the channels, the engine and intake from settings."""

from __future__ import annotations

import random
from typing import Any

import structlog

from channels.base import Channel
from channels.devices import DeviceBuses, DeviceChannel
from channels.email_smtp import SmtpEmail, SmtpSettings
from channels.registry import build_channels
from channels.sms_telnyx import default_callback_url as telnyx_callback_url
from channels.sms_twilio import default_callback_url
from channels.webhook_signed import SignedWebhooks
from dispatcher.access.auth import Authenticator
from dispatcher.access.credentials import reveal
from dispatcher.access.permissions import Permissions
from dispatcher.access.tokens import TokenRegistry
from dispatcher.alerting.approval_notice import ApprovalNotice
from dispatcher.alerting.intake import Intake
from dispatcher.answers.responses import Responses
from dispatcher.clock import Clock
from dispatcher.console.accounts import Accounts, LoginThrottle
from dispatcher.console.oidc import CALLBACK_PATH, OidcClient
from dispatcher.domain import ChannelKind
from dispatcher.drills.scheduler import DrillScheduler
from dispatcher.engine import Engine
from dispatcher.feeds.poller import FeedPoller
from dispatcher.feeds.relay import FeedRelay
from dispatcher.incidents.registry import IncidentRegistry
from dispatcher.observability import Metrics
from dispatcher.public.feed import PublicFeed
from dispatcher.records import CleryRecords
from dispatcher.refusals import Invalid
from dispatcher.scim.mapping import PersonMapping
from dispatcher.scim.provisioning import Provisioning
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertStore
from dispatcher.store.approvals import ApprovalRecord, ApprovalStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, open_database
from dispatcher.store.directory import DirectoryStore
from dispatcher.store.feeds import FeedStore
from dispatcher.store.incidents import IncidentStore
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from dispatcher.store.pauses import AlertPauses
from dispatcher.store.providers import ProviderDrains
from dispatcher.store.responses import ResponseStore
from dispatcher.store.scim import ScimStore
from dispatcher.store.sign_in import SignInLimits
from dispatcher.store.tokens import TokenStore
from dispatcher.store.users import ConsoleReads, UserStore
from dispatcher.store.webhook_log import WebhookLog
from dispatcher.views.alerts import AlertViews
from dispatcher.views.cap import CapDocuments
from dispatcher.views.devices import DeviceViews
from dispatcher.views.drills import DrillViews
from dispatcher.views.progress import ProgressStreams
from segments.audience import AudienceResolver
from segments.imports import DirectoryImports
from segments.sync import DirectorySync

log = structlog.get_logger("clarion.service")

# How often a watched alert's progress is read again when no notification came: changes on
# another node of a shared store, or the sweep's, reach its viewers within this.
PROGRESS_REFRESH_S = {"sqlite": 5.0, "postgres": 1.0}


class Service:
    """Everything a running Clarion holds; the API and the CLI reach the parts through it."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        clock: Clock | None = None,
        channels: dict[ChannelKind, Channel] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.tokens = TokenStore(db)
        self.auth = Authenticator(settings.auth, tokens=self.tokens, now_ms=self.clock.now_ms)
        self.permissions = Permissions(
            settings.auth, settings.directory.segments, settings.incidents
        )
        self.audit = AuditLog(db)
        self.users = UserStore(db)
        self.token_registry = TokenRegistry(settings.auth, self.tokens, self.users,
                                            self.audit, self.clock)
        self.alerts = AlertStore(db, self.audit)
        dispatch = settings.dispatch
        self.ledger = DeliveryLedger(
            db, RetryPolicy(dispatch.retry_base_s, dispatch.retry_max_s), random.Random()
        )
        self.directory = DirectoryStore(db)
        self.audience = AudienceResolver(db, settings.directory, settings.base_dir)
        # Imports kept with their reports and held by the safety brake; LDAP and exports.
        self.directory_imports = DirectoryImports(
            db, settings.directory, lambda: self.audience.campus, audit=self.audit,
            clock=self.clock,
        )
        self.directory_sync = DirectorySync(
            self.directory_imports, settings.directory, settings.base_dir
        )
        # One MQTT connection per distinct broker settings, shared by the device channels.
        self.device_buses = DeviceBuses(self.clock)
        # Providers drained by hand, read by each kind's failover channel on every node.
        self.provider_drains = ProviderDrains(db)
        self.channels = (
            channels if channels is not None
            else build_channels(
                _with_callback_urls(settings), buses=self.device_buses,
                providers=dispatch.providers, drained=self.provider_drains.drained,
            )
        )
        # Answers to an alert's question: any channel records them through `record_answer`.
        self.responses = Responses(
            ResponseStore(db, self.audit),
            clock=self.clock,
            secret=reveal(settings.answers.link_secret).encode() or None,
            building_zones=lambda: self.audience.campus.building_zones,
            channels=[kind.value for kind in self.channels if not kind.is_device],
        )
        self.pauses = AlertPauses(db)
        self.engine = Engine(
            settings=settings,
            alerts=self.alerts,
            ledger=self.ledger,
            audience=self.audience,
            channels=self.channels,
            metrics=self.metrics,
            clock=self.clock,
            single_node=db.dialect == "sqlite",
            responses=self.responses,
            pauses=self.pauses,
        )
        self.approvals = ApprovalStore(db, self.audit)
        self.intake = Intake(
            settings=settings,
            auth=self.auth,
            permissions=self.permissions,
            alerts=self.alerts,
            audience=self.audience,
            engine=self.engine,
            metrics=self.metrics,
            clock=self.clock,
            approvals=self.approvals,
            incidents=IncidentStore(db, self.audit),
        )
        self.approval_notice = ApprovalNotice(
            _smtp_settings(self.channels), settings.auth.approval.notify,
            console_url=settings.service.base_url(),
            channels_of=self._held_channels,
        )
        self.approvals.subscribe(self.approval_notice.held)
        self.scheduler = DrillScheduler(
            settings.drills,
            db=db,
            intake=self.intake,
            clock=self.clock,
            single_node=db.dialect == "sqlite",
            templates_dir=settings.templates_dir(),
        )
        # Upstream feeds (NWS, county CAP): every message decided once, relayed by the rules.
        self.feed_relay = FeedRelay(
            feeds=settings.feeds,
            store=FeedStore(db, self.audit),
            intake=self.intake,
            engine=self.engine,
            alerts=self.alerts,
            zones=lambda: self.audience.zones,
            clock=self.clock,
            permissions=self.permissions,
            policy=settings.policy,
        )
        self.feed_poller = FeedPoller(
            settings.feeds.sources if settings.feeds.enabled else {}, self.feed_relay,
            first_delay_s=settings.feeds.first_poll_delay_s,
            allowed_hosts=settings.feeds.allowed_hosts,
            max_bytes=settings.feeds.max_body_bytes,
        )
        self.incidents = IncidentRegistry(
            settings, IncidentStore(db, self.audit), self.clock, self.permissions
        )
        self._build_views()
        self._build_console()

    def _held_channels(self, record: ApprovalRecord) -> list[str]:
        """The channels a held request goes out on once approved."""
        try:
            return [c.value for c in self.intake.channels_for(record.request)]
        except Invalid:
            return [c.value for c in record.request.channels or ()]

    def _build_views(self) -> None:
        """The read models the API and the console show, and the alerts' progress streams."""
        settings, db = self.settings, self.db
        self.console_reads = ConsoleReads(db)
        self.views = AlertViews(self.ledger, self.pauses, self.console_reads, self.channels)
        self.devices = DeviceViews(self.directory, self.channels)
        self.cap = CapDocuments(settings, self.alerts)
        # Webhook subscribers' delivery log, and the CAP document their posts carry.
        self.webhook_log = WebhookLog(db)
        for channel in self.channels.values():
            if isinstance(channel, SignedWebhooks):
                channel.attach(log=self.webhook_log, cap=self.cap.of_alert)
        self.drills = DrillViews(self.scheduler, self.clock)
        self.records = CleryRecords(
            db, self.alerts, self.ledger, self.audit, settings.drills,
            institution=settings.service.institution, responses=self.responses,
        )
        self.progress = ProgressStreams(
            self.alerts, self.views, self.responses, self.clock,
            refresh_s=PROGRESS_REFRESH_S.get(db.dialect, 1.0),
        )
        self.alerts.subscribe(self.progress.changed, progress=True)
        self.ledger.subscribe(self.progress.changed)
        # SCIM provisioning: identity providers' people and groups into the directory.
        scim_mapping = PersonMapping(settings.directory, lambda: self.audience.campus)
        self.scim = Provisioning(ScimStore(db, self.audit, scim_mapping), scim_mapping, self.clock)
        # The public pages' snapshot, which the alert store tells about every change.
        self.public_feed = PublicFeed(
            settings, self.alerts, self.clock, shared_store=db.dialect != "sqlite"
        )

    def _build_console(self) -> None:
        """The console's accounts (sign-in, sessions, login limits) and campus SSO."""
        console = self.settings.console
        self.accounts = Accounts(
            self.users, self.audit, self.clock,
            throttle=LoginThrottle(
                SignInLimits(self.db), self.clock,
                per_user=console.sign_in.per_user,
                per_address=console.sign_in.per_address,
                window_s=console.sign_in.window_s,
            ),
        )
        self.sso = (
            OidcClient(console.oidc, self.settings.service.base_url() + CALLBACK_PATH)
            if console.oidc.enabled else None
        )

    @classmethod
    async def open(cls, settings: Settings, *, clock: Clock | None = None) -> Service:
        """Open the store named in the settings (migrating it) and build the service."""
        db = await open_database(settings.store.url)
        return cls(settings, db, clock=clock)

    async def start(self) -> None:
        """Load the example directory into an empty store and start the engine."""
        await self.audience.load_example()
        await self.engine.start()
        await self._register_devices()
        await self.scheduler.start()
        await self.feed_poller.start()
        await self.directory_sync.start()
        log.info(
            "service.started",
            channels=sorted(c.name for c in self.channels.values()),
            store=self.db.dialect,
        )

    async def _register_devices(self) -> None:
        """Tell the device channels which devices the directory has, heard from or not."""
        buses = {id(c.bus): c.bus for c in self.channels.values() if isinstance(c, DeviceChannel)}
        if not buses:
            return
        devices = await self.directory.devices()
        for bus in buses.values():
            bus.register_devices((d.id, d.device_class, d.zone) for d in devices)

    async def stop(self) -> None:
        """Stop the drill scheduler, drain the engine and close the store."""
        await self.directory_sync.stop()
        await self.feed_poller.stop()
        await self.scheduler.stop()
        await self.progress.close()
        await self.approval_notice.close()
        await self.engine.stop()
        await self.responses.close()
        await self.db.close()
        log.info("service.stopped")


def _smtp_settings(channels: dict[ChannelKind, Channel]) -> SmtpSettings | None:
    """The e-mail channel's relay settings, when it is the SMTP channel."""
    channel = channels.get(ChannelKind.EMAIL)
    return channel.settings if isinstance(channel, SmtpEmail) else None


def _with_callback_urls(settings: Settings) -> dict[str, dict[str, Any]]:
    """Channel sections, with provider callbacks pointed at this service unless configured."""
    sections = {name: dict(raw) for name, raw in settings.channels.items()}
    if "sms.twilio" in sections:
        sections["sms.twilio"].setdefault(
            "status_callback_url", default_callback_url(settings.service.base_url())
        )
    if "sms.telnyx" in sections:
        sections["sms.telnyx"].setdefault(
            "webhook_url", telnyx_callback_url(settings.service.base_url())
        )
    if "voice.twilio" in sections:
        sections["voice.twilio"].setdefault("callback_base_url", settings.service.base_url())
    return sections
