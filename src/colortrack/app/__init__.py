"""``colortrack app``: annotate a video in the browser (paint keyframes, propagate, correct,
export) and colorize it from reference frames; a local web app confined to one workspace folder."""
