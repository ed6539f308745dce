"""Failure notification: a Prefect automation that posts to a webhook when a riskstrat flow run fails, crashes or
times out.

Prefect's server emits an event for every state a flow run enters (`prefect.flow-run.Failed`, `...Crashed`,
`...TimedOut`); its trigger engine matches them and runs the automation's action. The recipe (`riskstrat notify
--webhook URL`, or `install_failure_notification`) saves a Webhook block holding the URL and creates one
automation, matching flow runs tagged `riskstrat` (the deployments' runs and every flow the CLI starts carry the
tag), whose action calls the block with a short JSON message. Running it again replaces both (idempotent).

The message names the run, its flow, its state and its page in the UI: no exception text, which could carry a
value from the data. It needs a Prefect server (`prefect server start`): the CLI's temporary server has no one to
notify and stops with the command.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

RUN_TAG = "riskstrat"
"""Every riskstrat flow run carries it: the deployments' tags and the CLI's `prefect.tags(RUN_TAG)`."""
AUTOMATION_NAME = "riskstrat: flow run failed, crashed or timed out"
BLOCK_NAME = "riskstrat-failure-webhook"
FAILURE_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")

# A Jinja template Prefect renders per event (flow_run, flow and deployment are the event's resources).
PAYLOAD = json.dumps(
    {
        "text": "riskstrat: flow run {{ flow_run.name }} ({{ flow.name }}) is {{ flow_run.state.name }}. "
        "{{ flow_run|ui_url }}",
        "flow_run": "{{ flow_run.name }}",
        "flow": "{{ flow.name }}",
        "state": "{{ flow_run.state.name }}",
        "url": "{{ flow_run|ui_url }}",
    }
)


def failure_automation(block_document_id: UUID) -> Any:
    """The automation: any failure event of a flow run tagged `riskstrat` calls the webhook block, at once."""
    from prefect.automations import AutomationCore
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture

    return AutomationCore(
        name=AUTOMATION_NAME,
        description="Posts to the riskstrat failure webhook (block " + BLOCK_NAME + "). Made by `riskstrat notify`.",
        enabled=True,
        trigger=EventTrigger(
            expect=set(FAILURE_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{RUN_TAG}"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[CallWebhook(block_document_id=block_document_id, payload=PAYLOAD)],
    )


def install_failure_notification(
    url: str, headers: dict[str, str] | None = None, allow_private_urls: bool = False
) -> tuple[UUID, UUID]:
    """Save the webhook block and (re)create the automation on the Prefect server PREFECT_API_URL names.
    `allow_private_urls` lets the webhook be on a private or loopback address (an internal relay). Returns the
    block document's and the automation's ids."""
    from prefect import get_client
    from prefect.blocks.webhook import Webhook

    block = Webhook(
        url=url,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
        allow_private_urls=allow_private_urls,
    )
    block_id = block.save(BLOCK_NAME, overwrite=True)
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(AUTOMATION_NAME):
            client.delete_automation(existing.id)
        automation_id = client.create_automation(failure_automation(block_id))
    return block_id, automation_id
