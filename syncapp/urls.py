from rest_framework.routers import DefaultRouter

from contracts.api import ContractLogViewSet, ContractViewSet, RunViewSet
from syncapp.api import (
    ConditionsViewSet,
    MappingViewSet,
    ObjectViewSet,
    RegisterViewSet,
    RuleViewSet,
    SchemaViewSet,
    SourceViewSet,
    StoredFileViewSet,
    SynchronizationViewSet,
)

router = DefaultRouter()
router.register("sources", SourceViewSet)
router.register("mappings", MappingViewSet)
router.register("registers", RegisterViewSet)
router.register("schemas", SchemaViewSet)
router.register("objects", ObjectViewSet)
router.register("rules", RuleViewSet)
router.register("synchronizations", SynchronizationViewSet)
router.register("files", StoredFileViewSet)
router.register("conditions", ConditionsViewSet, basename="conditions")
router.register("runs", RunViewSet)
router.register("contracts", ContractViewSet)
router.register("contract-logs", ContractLogViewSet)

urlpatterns = router.urls
