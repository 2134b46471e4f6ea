"""The Streamlit app: the script reruns from the top on every interaction and on save."""

import streamlit as st

st.set_page_config(page_title={{title:literal}}, layout="centered")

st.title({{heading:literal}})
st.caption({{description:literal}})

if "clicks" not in st.session_state:
    st.session_state.clicks = 0
if st.button("Click me"):
    st.session_state.clicks += 1
st.write(f"Clicked {st.session_state.clicks} times")
