"""host.json and both templates are sized from the Graph write budget (README: Fleet-wide write
budget): one instance keeps enough removals in flight to spend the budget at Graph's slowest
write latency, and the templates cap scale-out at what the budget can use plus spares."""

from __future__ import annotations

from reclaim.domain.write_budget import BudgetRule, instances_needed
from reclaim.functions.app_context import QueueOptions
from reclaim.settings import SETTINGS
from tests.support.infra_templates import MAIN_BICEP, parse_bicep, terraform_variables

GRAPH_WRITE_SECONDS = 0.5  # the slow end of Graph's 0.3-0.5 s per write
STORE_SECONDS = 0.1  # a removal's Table storage round trips (claim, ledger, request)
SPARE = 1  # an instance being recycled or slow
OTHER_FUNCTIONS = 2  # HTTP routes and timers scale in their own groups on Flex Consumption


def _budget() -> BudgetRule:
    rate = float(SETTINGS["graph_write_rate"][2])
    return BudgetRule(rate=rate, burst=float(SETTINGS["graph_write_burst"][2]))


def test_one_instance_keeps_enough_removals_in_flight_to_spend_the_budget() -> None:
    host = QueueOptions.from_host_json()
    in_flight = host.batch_size + host.new_batch_threshold
    needed = instances_needed(_budget(), GRAPH_WRITE_SECONDS + STORE_SECONDS, in_flight)
    assert needed == 1, f"{in_flight} in flight per instance needs {needed} instances"


def test_both_templates_cap_scale_out_at_what_the_budget_can_use() -> None:
    host = QueueOptions.from_host_json()
    in_flight = host.batch_size + host.new_batch_threshold
    needed = instances_needed(_budget(), GRAPH_WRITE_SECONDS + STORE_SECONDS, in_flight)
    bicep = parse_bicep(MAIN_BICEP)["parameters"]["maximumInstanceCount"]["default"]
    terraform = terraform_variables()["maximum_instance_count"]["default"]
    assert bicep == terraform == needed + SPARE + OTHER_FUNCTIONS
