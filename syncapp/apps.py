from django.apps import AppConfig


class SyncappConfig(AppConfig):
    name = "syncapp"
    verbose_name = "Synchronization"

    def ready(self) -> None:
        from syncapp.sealing import keys_announce

        keys_announce()
