from django import forms
from django.contrib import admin

from syncapp.models import Mapping, Object, Register, Schema, Source, Synchronization


class SourceForm(forms.ModelForm):
    """Credentials are write-only: the form never shows them, and a blank field keeps them."""

    new_credentials = forms.JSONField(
        required=False,
        label="Credentials",
        help_text="Write-only. Leave empty to keep the stored credentials.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    class Meta:
        model = Source
        fields = ["reference", "name", "description", "type", "location", "configuration", "is_enabled"]

    def save(self, commit: bool = True):
        source = super().save(commit=False)
        if self.cleaned_data.get("new_credentials"):
            source.credentials = self.cleaned_data["new_credentials"]
        if commit:
            source.save()
        return source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ["reference", "name", "type", "location", "is_enabled", "rate_limit_remaining"]
    list_filter = ["type", "is_enabled"]
    search_fields = ["reference", "name", "location"]


@admin.register(Mapping)
class MappingAdmin(admin.ModelAdmin):
    list_display = ["reference", "name", "pass_through", "updated_at"]
    search_fields = ["reference", "name"]


class SchemaInline(admin.TabularInline):
    model = Schema
    extra = 0


@admin.register(Register)
class RegisterAdmin(admin.ModelAdmin):
    list_display = ["reference", "name"]
    inlines = [SchemaInline]


@admin.register(Schema)
class SchemaAdmin(admin.ModelAdmin):
    list_display = ["reference", "register", "name"]
    list_filter = ["register"]


@admin.register(Object)
class ObjectAdmin(admin.ModelAdmin):
    list_display = ["uuid", "schema", "created_at", "updated_at"]
    list_filter = ["schema"]
    readonly_fields = ["uuid", "created_at", "updated_at"]


@admin.register(Synchronization)
class SynchronizationAdmin(admin.ModelAdmin):
    list_display = ["reference", "name", "source", "target_schema", "schedule", "is_enabled"]
    list_filter = ["is_enabled", "source_type", "target_type"]
    search_fields = ["reference", "name"]
    filter_horizontal = ["follow_ups"]
