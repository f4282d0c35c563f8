"""Django models: ``Snapshot`` (one row per run), ``Checkpoint`` (one row per orchestrator
turn, append-only), ``CacheEntry`` (the semantic cache and agent memory) and ``Delivery``
(a run, resume or turn handed to Django's tasks framework)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import functions
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .core.errors import CheckpointConflictError
from .core.orchestrator.checkpoints import CheckpointRecord, conflict_error, normalize_route
from .core.orchestrator.snapshot import UNVERSIONED
from .core.runs import config
from .core.runs.leases import LeaseState, lease_state, local_owner_prefix
from .core.runs.snapshots import RunSnapshot, snapshot_from_row
from .fields import VectorField
from .registry import registry


class Kind(models.TextChoices):
    WORKFLOW = "workflow", _("workflow")
    SUPERVISOR = "supervisor", _("supervisor")
    ORCHESTRATOR = "orchestrator", _("orchestrator turn")


class Status(models.TextChoices):
    RUNNING = "running", _("running")
    COMPLETED = "completed", _("completed")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    MAX_ITERATIONS = "max-iterations", _("max iterations")


TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.MAX_ITERATIONS)


#: What wrote a stored run, compared with the registered definitions (``by_definition``).
CURRENT, DRIFTED, UNREGISTERED = "current", "drifted", "unregistered"
VERDICTS = (CURRENT, DRIFTED, UNREGISTERED)


def registered_q(signatures: bool | None) -> models.Q:
    """Rows of a registered (kind, name): with its current signature (``True``), with another
    one (``False``: drifted), or with any (``None``)."""
    condition = models.Q(pk__in=[])
    for definition in registry.all():
        match = models.Q(kind=definition.kind, name=definition.name)
        if signatures is not None:
            same = models.Q(signature=definition.signature)
            match &= same if signatures else ~same
        condition |= match
    return condition


#: The JSON columns a list of runs never shows: not fetched for it (``summaries``).
SUMMARY_DEFERRED = ("input", "state", "steps", "usage", "error", "fingerprint")


class SnapshotQuerySet(models.QuerySet):
    """The shared vocabulary of the admin, the commands, the API and the jobs."""

    def summaries(self) -> SnapshotQuerySet:
        """Without the JSON columns a list never shows (input, state, steps, ...)."""
        return self.defer(*SUMMARY_DEFERRED)

    def running(self) -> SnapshotQuerySet:
        return self.filter(status=Status.RUNNING)

    def failed(self) -> SnapshotQuerySet:
        return self.filter(status=Status.FAILED)

    def finished(self) -> SnapshotQuerySet:
        return self.filter(status__in=TERMINAL)

    def for_flow(self, name: str, kind: str | None = None) -> SnapshotQuerySet:
        qs = self.filter(name=name)
        return qs.filter(kind=kind) if kind else qs

    def by_definition(self, verdict: str) -> SnapshotQuerySet:
        """Runs by what wrote them: ``"current"`` (the registered definition of their flow),
        ``"drifted"`` (another version of a registered flow), ``"unregistered"`` (a flow not
        registered in this process). One WHERE clause over the registered flows."""
        if verdict == CURRENT:
            return self.filter(registered_q(signatures=True))
        if verdict == DRIFTED:
            return self.filter(registered_q(signatures=False))
        if verdict == UNREGISTERED:
            return self.exclude(registered_q(signatures=None))
        raise ValueError(f"unknown definition verdict {verdict!r}; known: {', '.join(VERDICTS)}")

    def flow_names(self) -> list[str]:
        """Every stored flow name, in order, ignoring this queryset's filters.

        A recursive query that jumps from one name to the next through the ``(name, status)``
        index: its cost grows with the number of flows, not of runs (a plain ``DISTINCT``
        reads all 100,000 rows of a large table).
        """
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        name = connection.ops.quote_name("name")
        sql = (
            f"WITH RECURSIVE flows(flow) AS ("
            f"SELECT MIN({name}) FROM {table} "
            f"UNION ALL SELECT (SELECT MIN({name}) FROM {table} WHERE {name} > flows.flow) "
            f"FROM flows WHERE flows.flow IS NOT NULL) "
            f"SELECT flow FROM flows WHERE flow IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return [row[0] for row in cursor.fetchall()]

    def stale(self, now: Any = None) -> SnapshotQuerySet:
        """Running runs no live worker holds: their lease was never taken, expired, or is
        held by a process of this host that died. Row for row what ``leases.is_stale`` says
        (and what ``drain_runs`` resumes)."""
        now = now or timezone.now()
        unheld = (
            models.Q(lease_owner__isnull=True)
            | models.Q(lease_owner="")
            | models.Q(lease_expires_at__isnull=True)
            | models.Q(lease_expires_at__lt=now)
        )
        return self.running().filter(unheld | models.Q(pk__in=self._dead_holders(now)))

    def leased(self, now: Any = None) -> SnapshotQuerySet:
        """Running runs a live worker holds (``LeaseState.LIVE``): the complement of
        ``stale()`` among running runs."""
        now = now or timezone.now()
        held = self.running().filter(lease_expires_at__gte=now).exclude(lease_owner="")
        return held.filter(lease_owner__isnull=False).exclude(pk__in=self._dead_holders(now))

    def _dead_holders(self, now: Any) -> list[str]:
        """Runs whose unexpired lease is held by a dead process of this host (one query over
        this host's held runs; a holder elsewhere cannot be seen dead, only expire)."""
        candidates = self.running().filter(
            lease_owner__startswith=local_owner_prefix(), lease_expires_at__gte=now
        )
        return [
            run_id
            for run_id, owner, expires in candidates.values_list(
                "run_id", "lease_owner", "lease_expires_at"
            )
            if lease_state(owner, expires, now) is LeaseState.DEAD
        ]


class Snapshot(models.Model):
    """The live snapshot of one run. Every save of a run replaces its row (one upsert)."""

    run_id = models.CharField(_("run id"), max_length=255, primary_key=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.WORKFLOW)
    name = models.CharField(_("flow"), max_length=200)
    signature = models.CharField(_("signature"), max_length=16)
    version = models.CharField(_("version"), max_length=100, null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    next_step = models.CharField(_("next step"), max_length=255, null=True, blank=True)
    iteration = models.IntegerField(_("iteration"), null=True, blank=True)
    input = models.JSONField(_("input"), null=True, blank=True)
    state = models.JSONField(_("state"), default=dict)
    steps = models.JSONField(_("steps"), default=dict)
    usage = models.JSONField(_("usage"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    fingerprint = models.JSONField(_("structural fingerprint"), null=True, blank=True)
    #: Each execution of the run: who, when, from where, why it ended (RunAttempt dicts).
    attempts = models.JSONField(_("attempts"), default=list, blank=True)
    #: The state keys stored apart, in ``SnapshotValue`` rows (None: none).
    state_apart = models.JSONField(_("state keys stored apart"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=255, null=True, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)
    cancel_reason = models.TextField(_("cancel reason"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"))
    saved_at = models.DateTimeField(_("saved at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-saved_at"]
        indexes = [
            models.Index(fields=["saved_at"], name="warlock_snap_saved_idx"),
            models.Index(fields=["status", "saved_at"], name="warlock_snap_status_idx"),
            models.Index(fields=["name", "status"], name="warlock_snap_name_idx"),
        ]
        permissions = [
            ("resume_snapshot", "Can resume a run"),
            ("force_resume_snapshot", "Can force-resume a drifted run"),
            ("discard_snapshot", "Can discard a run"),
            ("cancel_snapshot", "Can cancel a run"),
            ("migrate_snapshot", "Can migrate a drifted run"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.run_id} ({self.status})"

    def to_snapshot(self) -> RunSnapshot:
        """The engine's dataclass for this row (``WorkflowSnapshot``, ...), with its whole
        state (``full_state()``)."""
        return snapshot_from_row(self, self.full_state())

    def full_state(self) -> Any:
        """The run's whole state: the ``state`` column and the keys ``state_apart`` lists,
        stored in ``SnapshotValue`` rows (large values; see ``EXTERNAL_BYTES``). One query
        for those when there are any, none when they were prefetched
        (``prefetch_related("state_values")``)."""
        cached = self.__dict__.get("_warlock_full_state")
        if cached is not None:
            return cached
        state, keys = self.state, self.state_apart
        if keys and isinstance(keys, list) and isinstance(state, dict):
            # Only the keys listed: a value left from before is not part of the state.
            listed = set(keys)
            apart = {v.key: v.value for v in self.state_values.all() if v.key in listed}
            state = {**state, **apart}
        self.__dict__["_warlock_full_state"] = state
        return state

    def lease_state(self, now: Any = None) -> LeaseState:
        """What this row's lease says about its worker (``leases.lease_state``)."""
        return lease_state(
            self.lease_owner, self.lease_expires_at, now or timezone.now(), self.status
        )


class SnapshotValue(models.Model):
    """One key of a run's state stored apart from the rest: a value whose JSON is at least
    ``EXTERNAL_BYTES`` (8 KiB) long. A snapshot write rewrites only the keys whose value
    changed, so a large value the steps do not change costs nothing per step; the row's
    ``state`` column holds the other keys. ``Snapshot.full_state()`` joins both."""

    # Indexed by the unique constraint, whose first column it is.
    run = models.ForeignKey(
        Snapshot,
        on_delete=models.CASCADE,
        related_name="state_values",
        verbose_name=_("run"),
        db_index=False,
    )
    key = models.CharField(_("state key"), max_length=255)
    value = models.JSONField(_("value"))
    #: Characters of the value's JSON.
    size = models.PositiveIntegerField(_("size"))

    class Meta:
        verbose_name = _("state value")
        verbose_name_plural = _("state values")
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="warlock_snapvalue_key_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} state[{self.key!r}]"


def snapshot_rows() -> SnapshotQuerySet:
    """``Snapshot`` rows on the database the configured snapshot store uses: the admin and
    the API are windows on the ORM store's table."""
    using = getattr(config.resolve("default_snapshot_store"), "using", None)
    return Snapshot.objects.using(using) if using else Snapshot.objects.all()


class CheckpointQuerySet(models.QuerySet):
    """Checkpoints are append-only: a queryset may read and delete them, never update them."""

    def for_session(self, name: str, session_id: str) -> CheckpointQuerySet:
        return self.filter(orchestrator_name=name, session_id=session_id)

    def latest_turns(self) -> CheckpointQuerySet:
        """One row per session, its latest turn, annotated with ``turn_count``.

        Both are correlated subqueries served by the unique index, so listing sessions is one
        query however many there are; the count is not ``turn_index + 1`` once pruned.
        """
        session = self.model._default_manager.filter(
            orchestrator_name=models.OuterRef("orchestrator_name"),
            session_id=models.OuterRef("session_id"),
        ).order_by()
        last = session.order_by("-turn_index").values("turn_index")[:1]
        count = session.values("orchestrator_name", "session_id").annotate(n=models.Count("pk"))
        return self.filter(turn_index=models.Subquery(last)).annotate(
            turn_count=models.Subquery(count.values("n"))
        )

    def with_interrupted_turn(self) -> CheckpointQuerySet:
        """Annotate each row with ``interrupted_run``: the run id of the turn after it when
        that turn is stored as a ``running`` snapshot of kind ``orchestrator`` in the
        ``Snapshot`` table (on a session's latest row: its interrupted turn), else None.

        The run id is built as the orchestrator builds it, with the snapshot's own version:
        ``<session_id>.<version or "unversioned">.<turn>``.
        """
        version = functions.Coalesce(
            functions.NullIf(models.F("version"), models.Value("")), models.Value(UNVERSIONED)
        )
        next_turn = functions.Cast(models.OuterRef("turn_index") + 1, models.CharField())
        run_id = functions.Concat(
            models.OuterRef("session_id"),
            models.Value("."),
            version,
            models.Value("."),
            next_turn,
            output_field=models.CharField(),
        )
        turns = Snapshot.objects.filter(
            name=models.OuterRef("orchestrator_name"),
            status=Status.RUNNING,
            kind=Kind.ORCHESTRATOR,
            run_id=run_id,
        )
        return self.annotate(interrupted_run=models.Subquery(turns.values("run_id")[:1]))

    def update(self, **kwargs: Any) -> int:
        raise CheckpointConflictError(
            "checkpoints are append-only: QuerySet.update() is refused; save a new turn instead"
        )

    # Django's marker on methods that change data (templates never call them); typeshed's
    # functions have no such attribute.
    update.alters_data = True  # type: ignore[attr-defined]


class Checkpoint(models.Model):
    """One settled turn of an orchestrator session. Rows are immutable once written.

    The unique constraint's index ``(orchestrator_name, session_id, turn_index)`` also serves
    the latest-turn lookup (``ORDER BY turn_index DESC LIMIT 1``, an index scan backwards).
    """

    orchestrator_name = models.CharField(_("orchestrator"), max_length=200)
    session_id = models.CharField(_("session id"), max_length=255)
    turn_index = models.IntegerField(_("turn"))
    state = models.JSONField(_("state"), default=dict)
    last_route = models.JSONField(_("last route"), null=True, blank=True)
    signature = models.CharField(_("signature"), max_length=64)
    version = models.CharField(_("version"), max_length=100, null=True, blank=True)
    summarized_through = models.IntegerField(_("summarized through"), null=True, blank=True)
    turn_key = models.CharField(_("turn key"), max_length=255, null=True, blank=True)
    lock_acquired_at = models.DateTimeField(_("lock acquired at"), null=True, blank=True)
    lock_expires_at = models.DateTimeField(_("lock expires at"), null=True, blank=True)
    saved_at = models.DateTimeField(_("saved at"), default=timezone.now)

    objects = CheckpointQuerySet.as_manager()

    class Meta:
        verbose_name = _("checkpoint")
        verbose_name_plural = _("checkpoints")
        ordering = ["orchestrator_name", "session_id", "turn_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["orchestrator_name", "session_id", "turn_index"],
                name="warlock_checkpoint_turn_uniq",
            ),
        ]
        indexes = [models.Index(fields=["saved_at"], name="warlock_ckpt_saved_idx")]

    def __str__(self) -> str:
        return f"{self.orchestrator_name} {self.session_id} turn {self.turn_index}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert a new turn; an existing row, or an existing turn, raises
        ``CheckpointConflictError``."""
        if not self._state.adding:
            raise CheckpointConflictError(
                f"checkpoint {self} is already saved and checkpoints are append-only; "
                "save a new turn instead",
                orchestrator_name=self.orchestrator_name,
                session_id=self.session_id,
                turn_index=self.turn_index,
            )
        kwargs["force_insert"] = True
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        try:
            with transaction.atomic(using=using):
                super().save(*args, **kwargs)
        except IntegrityError:
            if type(self).objects.using(using).filter(**self._key()).exists():
                raise conflict_error(*self._key().values()) from None
            raise

    def _key(self) -> dict[str, Any]:
        return {
            "orchestrator_name": self.orchestrator_name,
            "session_id": self.session_id,
            "turn_index": self.turn_index,
        }

    def to_record(self) -> CheckpointRecord:
        """The engine's dataclass for this row."""
        return CheckpointRecord(
            orchestrator_name=self.orchestrator_name,
            session_id=self.session_id,
            turn_index=self.turn_index,
            state=self.state if self.state is not None else {},
            last_route=normalize_route(self.last_route),
            signature=self.signature,
            version=self.version,
            summarized_through=self.summarized_through,
            turn_key=self.turn_key,
            lock_acquired_at=self.lock_acquired_at,
            lock_expires_at=self.lock_expires_at,
            saved_at=self.saved_at,
        )


class CacheEntryQuerySet(models.QuerySet):
    def for_namespace(self, namespace: str) -> CacheEntryQuerySet:
        return self.filter(namespace=namespace)

    def expired(self, now: Any = None) -> CacheEntryQuerySet:
        return self.filter(expires_at__lt=now or timezone.now())

    def live(self, now: Any = None) -> CacheEntryQuerySet:
        now = now or timezone.now()
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gte=now))


class CacheEntry(models.Model):
    """One entry of the semantic cache or of agent memory: a JSON value under
    ``(namespace, key)``, with an optional embedding for similarity search.

    ``embedding`` is pgvector's ``vector(n)`` with an HNSW cosine index on a PostgreSQL that
    has the extension (decided when the migration runs), JSON text elsewhere.
    """

    namespace = models.CharField(_("namespace"), max_length=200)
    key = models.CharField(_("key"), max_length=255)
    scope = models.CharField(_("scope"), max_length=255, null=True, blank=True)
    value = models.JSONField(_("value"), null=True, blank=True)
    embedding = VectorField(_("embedding"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    hits = models.PositiveIntegerField(_("hits"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = CacheEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("cache entry")
        verbose_name_plural = _("cache entries")
        ordering = ["namespace", "key"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="warlock_cache_key_uniq"),
        ]
        indexes = [
            models.Index(fields=["namespace", "scope"], name="warlock_cache_scope_idx"),
            models.Index(fields=["expires_at"], name="warlock_cache_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.key}"


class Delivery(models.Model):
    """A run, a resume or a turn given to Django's tasks framework (``BACKGROUND = "tasks"``).

    The task carries only this row's ``key`` (the rq job id's form: ``warlock-run-<run id>``,
    ``warlock-turn-<digest>``); what it runs is here. The row makes one delivery per run or
    turn (enqueueing it again returns the live one), notes which process runs it (``owner``,
    renewed in ``seen_at``), and lets ``drain_runs --enqueue`` put back a delivery whose worker
    died: the tasks framework itself leaves such a task running for ever.
    """

    class State(models.TextChoices):
        WAITING = "waiting", _("waiting")
        RUNNING = "running", _("running")
        FINISHED = "finished", _("finished")
        FAILED = "failed", _("failed")

    key = models.CharField(_("key"), max_length=300, primary_key=True)
    task = models.CharField(_("task"), max_length=20)  # execute, resume, turn
    arguments = models.JSONField(_("arguments"), default=dict)
    state = models.CharField(_("state"), max_length=20, choices=State.choices)
    backend = models.CharField(_("tasks backend"), max_length=100)
    queue = models.CharField(_("queue"), max_length=100)
    result_id = models.CharField(_("task result id"), max_length=100, blank=True, default="")
    owner = models.CharField(_("owner"), max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    notes = models.JSONField(_("notes"), default=dict, blank=True)
    outcome = models.JSONField(_("outcome"), null=True, blank=True)
    enqueued_at = models.DateTimeField(_("enqueued at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    seen_at = models.DateTimeField(_("seen at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["enqueued_at"]
        indexes = [models.Index(fields=["state", "seen_at"], name="warlock_delivery_state_idx")]

    def __str__(self) -> str:
        return self.key

    # What warlock_ai's commands and operations read of an rq job, so either can be shown.
    @property
    def id(self) -> str:
        return self.key

    @property
    def meta(self) -> dict[str, Any]:
        return self.notes

    def save_meta(self) -> None:
        """Write ``notes``, unless another process took the delivery over meanwhile."""
        type(self).objects.filter(key=self.key, owner=self.owner).update(notes=self.notes)


class ConcurrencySlot(models.Model):
    """One run holding one of the slots of a limit (``WARLOCK_AI["CONCURRENCY"]``): ``scope``
    is ``flow:<name>`` or ``queue:<name>``, ``holder`` the run id, ``owner`` the execution that
    took it (``host:pid:token``). Taken when a worker starts or resumes a run and deleted by
    that execution when it ends; its ``expires_at`` is renewed every third of
    ``LEASE_SECONDS``, so a slot of a dead worker frees itself as a lease does. Two deliveries
    of one run (a redelivery while the first still lives) hold a row each and count once."""

    scope = models.CharField(_("scope"), max_length=255)
    holder = models.CharField(_("holder"), max_length=255)
    owner = models.CharField(_("owner"), max_length=255)
    acquired_at = models.DateTimeField(_("acquired at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        verbose_name = _("concurrency slot")
        verbose_name_plural = _("concurrency slots")
        ordering = ["scope", "acquired_at"]
        indexes = [models.Index(fields=["owner"], name="warlock_slot_owner_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "holder", "owner"], name="warlock_slot_owner_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope}: {self.holder}"
