from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "chatsite.deploy"
    label = "deploy"
    verbose_name = "Deployment"
