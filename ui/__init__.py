"""Streamlit helpers shared by the app's pages (the only package besides pages/ that imports streamlit)."""
