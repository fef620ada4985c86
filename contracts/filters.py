"""Filters of the lists of runs, contracts and contract logs (see syncapp.filters)."""
from __future__ import annotations

import django_filters

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.filters import IdFilter, SynchronizationFilter, TrueOrFalseFilter, after, before


class RunFilterSet(django_filters.FilterSet):
    synchronization = SynchronizationFilter()
    status = django_filters.ChoiceFilter(choices=SynchronizationRun.Status.choices)
    trigger = django_filters.ChoiceFilter(choices=SynchronizationRun.Trigger.choices)
    isTest = TrueOrFalseFilter(field_name="is_test")
    parent = IdFilter(field_name="parent_id", help_text="The id of the run that started it.")
    createdAfter = after("created_at", "created")
    createdBefore = before("created_at", "created")
    startedAfter = after("started_at", "started")
    startedBefore = before("started_at", "started")
    finishedAfter = after("finished_at", "finished")
    finishedBefore = before("finished_at", "finished")

    class Meta:
        model = SynchronizationRun
        fields: list[str] = []


class ContractFilterSet(django_filters.FilterSet):
    synchronization = SynchronizationFilter()
    status = django_filters.ChoiceFilter(choices=SynchronizationContract.Status.choices)
    targetLastAction = django_filters.ChoiceFilter(
        field_name="target_last_action", choices=SynchronizationContract.Action.choices
    )
    originId = django_filters.CharFilter(field_name="origin_id", help_text="The object's id at the source.")
    targetId = django_filters.CharFilter(field_name="target_id", help_text="The object's id at the target.")
    updatedAfter = after("updated_at", "changed")
    updatedBefore = before("updated_at", "changed")

    class Meta:
        model = SynchronizationContract
        fields: list[str] = []


class ContractLogFilterSet(django_filters.FilterSet):
    synchronization = SynchronizationFilter()
    run = IdFilter(field_name="run_id", help_text="The run's id.")
    contract = IdFilter(field_name="contract_id", help_text="The contract's id.")
    action = django_filters.CharFilter(help_text="What was done: create, update, delete, skip, write-back, ...")
    status = django_filters.CharFilter(help_text="The outcome: synced, failed, invalid, ...")
    originId = django_filters.CharFilter(field_name="origin_id", help_text="The object's id at the source.")
    createdAfter = after("created_at", "written")
    createdBefore = before("created_at", "written")

    class Meta:
        model = ContractLog
        fields: list[str] = []
