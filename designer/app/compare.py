"""Placeholder until the library lands."""
import streamlit as st


def render() -> None:
    st.info("This page is waiting for its library module.")
