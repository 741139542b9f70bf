"""The investigator web page (线索核查页面): ``index.html``, served at ``/ui`` by :mod:`serving.api`."""
