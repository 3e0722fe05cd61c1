"""designer's browser app. Start it with `designer app [LAYOUT]` (or `streamlit run app.py`).

This file only hands over to designer/app/main.py: pages and session state live in designer/app/,
and every number they show comes from the same library functions as the CLI."""
from designer.app.main import main

main()
