"""The trace browser's questions (runs, a page of steps, one step's detail), answered from
the store for the sidebar's REST API and the inline widget alike."""
