"""The browser app's pages (Streamlit). `app.py` at the repository root only calls `designer.app.main.main()`."""
