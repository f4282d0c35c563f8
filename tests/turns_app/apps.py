from django.apps import AppConfig


class TurnFlowsConfig(AppConfig):
    name = "tests.turns_app"
    label = "turn_flows"
    verbose_name = "Orchestrators of the turn command and job tests"
